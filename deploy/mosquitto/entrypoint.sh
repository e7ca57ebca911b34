#!/bin/sh
# Writes mosquitto's password file from the environment, then runs the given command
# (the image's /docker-entrypoint.sh mosquitto -c ...).
#
#   MQTT_USERNAME / MQTT_PASSWORD              the twin service (required)
#   MQTT_SIM_USERNAME / MQTT_SIM_PASSWORD      the simulated MES (optional)
#   MOSQUITTO_DATA_DIR                         where the file goes (default /mosquitto/data)
set -eu

: "${MQTT_USERNAME:?set MQTT_USERNAME in deploy/.env}"
: "${MQTT_PASSWORD:?set MQTT_PASSWORD in deploy/.env}"
for password in "$MQTT_PASSWORD" "${MQTT_SIM_PASSWORD:-}"; do
    case "$password" in
        change-me*)
            echo "entrypoint: replace the change-me passwords of deploy/.env" >&2
            exit 1
            ;;
    esac
done
data_dir="${MOSQUITTO_DATA_DIR:-/mosquitto/data}"
passwd="$data_dir/passwd"

umask 077
mkdir -p "$data_dir"
rm -f "$passwd.new"
mosquitto_passwd -c -b "$passwd.new" "$MQTT_USERNAME" "$MQTT_PASSWORD"
if [ -n "${MQTT_SIM_USERNAME:-}" ]; then
    : "${MQTT_SIM_PASSWORD:?set MQTT_SIM_PASSWORD in deploy/.env (or leave MQTT_SIM_USERNAME empty)}"
    mosquitto_passwd -b "$passwd.new" "$MQTT_SIM_USERNAME" "$MQTT_SIM_PASSWORD"
fi
if [ "$(id -u)" = 0 ] && id mosquitto >/dev/null 2>&1; then
    # mosquitto drops to this user and wants to own the file (2.0.16+ warns otherwise)
    chown mosquitto:mosquitto "$passwd.new"
fi
mv -f "$passwd.new" "$passwd"

exec "$@"
