# f8a-jobs service image: gunicorn with uvicorn workers, run as a non-root user.
# It listens on 0.0.0.0, so it starts only with F8A_JOBS_API_TOKENS set (or, knowingly,
# F8A_JOBS_ALLOW_ANONYMOUS=true): the API is not served to anyone by default.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    F8A_JOBS_HOST=0.0.0.0 \
    F8A_JOBS_PORT=34000

WORKDIR /opt/f8a-jobs
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt
COPY pyproject.toml README.md swagger.yaml ./
COPY f8a_jobs ./f8a_jobs
COPY default_jobs ./default_jobs
RUN pip install --no-cache-dir --no-deps . \
    && useradd --system --uid 1001 --home-dir /opt/f8a-jobs f8a-jobs \
    && mkdir -p /var/lib/f8a-jobs && chown f8a-jobs /var/lib/f8a-jobs

USER 1001
# The embedded default (SQLite) needs a writable place; production sets F8A_JOBS_DATABASE_URL.
ENV F8A_JOBS_DATABASE_URL=sqlite:////var/lib/f8a-jobs/f8a_jobs.db \
    F8A_JOBS_DEFAULT_JOBS_DIR=/opt/f8a-jobs/default_jobs
EXPOSE 34000
ENTRYPOINT ["f8a-jobs"]
CMD ["serve"]
