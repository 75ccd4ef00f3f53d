"""Plain API clients, one package per source system (no Dagster, no engine), and what they
share: the HTTP layer (`http_session`) and Google credentials (`google_auth`)."""
