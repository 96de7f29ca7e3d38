# The service image: slim Python, non-root, served by gunicorn through `ivig-cds serve`.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY cds_service ./cds_service
COPY hooks ./hooks
COPY fhir_fixtures ./fhir_fixtures
# The reports extra: `ivig-cds report feedback` draws its charts, `knowledge report` renders cards.
# A numeric user: Kubernetes' runAsNonRoot can check a number, not a name (deploy/kubernetes).
RUN pip install --no-cache-dir ".[reports]" \
    && useradd --system --uid 10001 --user-group --home /app ivig \
    && mkdir -p /data && chown 10001:10001 /data
USER 10001
ENV IVIG_CDS_DATABASE_URL=sqlite:////data/feedback.sqlite3
# Audit records wait here until the database has them: the user must be able to write it.
ENV IVIG_CDS_AUDIT_SPOOL_DIR=/data/audit-spool
EXPOSE 8080
CMD ["ivig-cds", "serve", "--host", "0.0.0.0", "--port", "8080"]
