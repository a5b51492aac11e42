#!/usr/bin/env bash
# docker-compose.yml cannot be run on machines without a Docker engine, so
# check what can be checked: the YAML parses, the three services with their
# health checks are there, and the configuration the recstream service runs
# with (the shipped file plus the service's --set overrides) loads.
#   check_compose.sh RECSTREAM_BIN SOURCE_DIR
set -euo pipefail
BIN="$1"
SRC="$2"
mapfile -t args < <(/usr/bin/python3 - "$SRC/docker-compose.yml" <<'PY'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
services = doc["services"]
for name in ("kafka", "redis", "recstream"):
    assert name in services, "service %s missing" % name
for name in ("kafka", "redis"):
    assert "healthcheck" in services[name], "%s has no healthcheck" % name
cmd = services["recstream"]["command"]
assert cmd[0] == "run", "recstream service does not run the daemon"
deps = services["recstream"]["depends_on"]
assert all(deps[d]["condition"] == "service_healthy" for d in ("kafka", "redis"))
# print the --set overrides, one argument per line
it = iter(cmd[1:])
for a in it:
    if a == "-c":
        next(it)
    else:
        print(a)
PY
)
"$BIN" run --check -c "$SRC/config/recstream.conf" "${args[@]}"
