#!/bin/sh
# Demo service: loads its config and CA bundle, checks its database,
# serves /srv over HTTP on 8080 and stops cleanly on SIGTERM.
. /etc/demo/app.conf
cat /etc/ssl/certs/ca-certificates.crt > /dev/null
/app/migrate.sh
nc -w 1 "$DB_HOST" "$DB_PORT" < /dev/null || echo "database $DB_HOST:$DB_PORT unreachable, continuing"
httpd -f -p "$PORT" -h /srv &
server=$!
trap 'echo "demo stopping"; kill "$server"; wait "$server"; exit 0' TERM
echo "demo listening on $PORT"
while true; do
    sleep 1 &
    wait $!
done
