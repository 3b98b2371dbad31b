"""gunicorn settings for intake: `gunicorn -c gunicorn.conf.py wsgi:app`.

The access log is off: a line per request would record client addresses,
user agents and timing that could link a person to a report. gunicorn names
itself in a Server header on every response and has no setting against it;
the name it uses is blanked here (tests/test_deploy.py runs this file).
"""

import gunicorn.http.wsgi

# Read by each response as it is made (gunicorn.http.wsgi.Response.__init__).
gunicorn.http.wsgi.SERVER = ""

bind = "127.0.0.1:8000"
workers = 2
# Uploads can be large and slow on poor connections.
timeout = 300
accesslog = None
disable_redirect_access_to_syslog = True
errorlog = "-"
loglevel = "info"
# Never echo the request line or headers in error messages sent to clients.
limit_request_line = 4094
proc_name = "intake"
