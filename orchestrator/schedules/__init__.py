"""The operator's own schedules, made in chat: timings read into cron (`timing`), the table (`records`) and
the scheduler job that fires each slot once (`firing`)."""
