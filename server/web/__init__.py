"""The pages: server-rendered HTML, its charts and badges, templates and static files."""
