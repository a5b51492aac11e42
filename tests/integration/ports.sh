# ports.sh - free_port for the integration tests (sourced): a loopback port for
# a server the test starts. It is drawn below Linux's ephemeral range (32768
# and up), where outgoing connections take their local ports, so only another
# listening server can hold it, and one that answers a connect is skipped.
free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 12000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
  done
  echo "free_port: no free port found" >&2
  return 1
}
