#!/bin/sh
# tpmphone, as installed by the Debian package: the distribution in /usr/share/tpmphone/lib on Java 17 or later.
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"
exec "$JAVA" ${TPMPHONE_JAVA_OPTIONS:-} -cp '/usr/share/tpmphone/lib/*' io.tpmphone.cli.Main "$@"
