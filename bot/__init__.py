"""cohortbot: keeps peer-mentoring cohorts running on Slack, Matrix and the terminal."""
