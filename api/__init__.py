"""The OneVisit service: storage, HTTP API, jobs and calendar output. Builds on `scheduler`."""
