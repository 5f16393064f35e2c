"""Django's PostgreSQL backend, made to accept NUL characters (PostgreSQL's text and jsonb cannot
hold U+0000, which a model may sample): see base.py. DATABASE_URL=postgres://… selects it.

Imports: Django's PostgreSQL backend and psycopg; no app.
"""
