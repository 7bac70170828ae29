#!/bin/sh
# Pretend schema migration: records that it ran.
echo "schema v1" > /tmp/migrated
