#!/bin/sh
# Smoke check run inside the container by the smoke_test scenario.
test -s /srv/index.html
