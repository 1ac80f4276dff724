-- Each service owns its database and its role (run once, by the postgres image, on a new volume).
-- The passwords are for a local stack only: set real ones where it matters.
CREATE ROLE cohort LOGIN PASSWORD 'cohort';
CREATE DATABASE cohort OWNER cohort;
CREATE ROLE report LOGIN PASSWORD 'report';
CREATE DATABASE report OWNER report;
