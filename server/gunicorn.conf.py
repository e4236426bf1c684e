"""Production settings of gunicorn for the API, loaded by `python run_server.py serve`.

Static on purpose: bind, workers, threads, timeout and log level come from the environment through
run_server.py (HOST, PORT, WEB_CONCURRENCY or GUNICORN_WORKERS, GUNICORN_THREADS, GUNICORN_TIMEOUT,
LOG_LEVEL), which sets them after this file is read.
"""

# Threads per worker: requests mostly wait on DynamoDB, so threads are cheaper than processes.
worker_class = "gthread"
# The app (and its boto3 client) is created in each worker after the fork, never shared.
preload_app = False
# A request needs at most two store reads bounded to about a second each; 30 s means a stuck worker.
timeout = 30
# On SIGTERM, finish requests in flight for up to this long, then exit.
graceful_timeout = 10
# Idle keep-alive connections stay open longer than the load balancer's idle timeout (30 s in
# infra/similar-users.yaml), so that it is always the load balancer that closes them: else it may
# send a request on a connection gunicorn is closing, and answer 502.
keepalive = 75
# The workers' heartbeat files: both deployments keep /tmp writable under a read-only root (a task
# volume on ECS, a tmpfs in docker-compose.yml).
worker_tmp_dir = "/tmp"
# Access log to stdout, errors to stderr (12-factor logs).
accesslog = "-"
errorlog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
# Small requests only: the API takes a user handle and two optional fields.
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190
proc_name = "similar-users"
# No runtime control socket: its default path is shared by every gunicorn of the user.
control_socket_disable = True
