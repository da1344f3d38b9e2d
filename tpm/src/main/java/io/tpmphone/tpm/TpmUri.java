package io.tpmphone.tpm;

import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;

/**
 * Where a TPM is reached, written in the style of tpm2-tss TCTI strings.
 *
 * <ul>
 *   <li>{@code swtpm:socket=/path/server.sock} — the data channel of a swtpm on a Unix-domain socket
 *       ({@code swtpm socket --server type=unixio,path=…}); reachable only by users who may enter the socket's
 *       directory, which {@code tpmphone swtpm start} makes owner-only. The preferred form for swtpm.</li>
 *   <li>{@code swtpm:host=127.0.0.1,port=2321} — the data port of a swtpm over TCP. <em>Insecure on a shared
 *       host</em>: any local user can connect to a loopback port (and to its control port P+1, which can save and
 *       restore the whole TPM state), so use it only for tools that need TCP.</li>
 *   <li>{@code device:/dev/tpmrm0} — a Linux TPM character device, normally the kernel resource manager.</li>
 * </ul>
 *
 * All accept an optional {@code timeout=MS} option ({@code swtpm:socket=/run/s.sock,timeout=5000},
 * {@code device:/dev/tpmrm0,timeout=5000}) bounding connect and each command's round trip. The control channel of a
 * swtpm is never named or touched. Immutable.
 */
public final class TpmUri {

    /** How long one command may take unless the URI says otherwise; RSA key generation on swtpm takes up to ~0.5 s. */
    public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(10);

    /** The kind of transport a URI names. */
    public enum Kind {
        /** A swtpm data port over TCP ({@code swtpm:host=H,port=P}). */
        SWTPM,
        /** A swtpm data channel on a Unix-domain socket ({@code swtpm:socket=PATH}). */
        SWTPM_SOCKET,
        /** A TPM character device ({@code device:PATH}). */
        DEVICE
    }

    /**
     * The longest Unix-domain socket path Linux accepts ({@code sun_path} is 108 bytes with its terminating NUL).
     */
    public static final int MAX_SOCKET_PATH_BYTES = 107;

    private final Kind kind;
    private final String host;
    private final int port;
    private final Path devicePath; // the device, or the swtpm socket
    private final Duration timeout;

    private TpmUri(Kind kind, String host, int port, Path devicePath, Duration timeout) {
        this.kind = kind;
        this.host = host;
        this.port = port;
        this.devicePath = devicePath;
        this.timeout = timeout;
    }

    /** A swtpm data port on the given host. */
    public static TpmUri swtpm(String host, int port) {
        checkPort(port);
        return new TpmUri(Kind.SWTPM, Objects.requireNonNull(host, "host"), port, null, DEFAULT_TIMEOUT);
    }

    /**
     * A swtpm data channel on a Unix-domain socket.
     *
     * @throws IllegalArgumentException if the path is relative, names a directory ('/' at the end), contains ',' or
     *     white space (which the URI form cannot carry), or is longer than {@link #MAX_SOCKET_PATH_BYTES} bytes
     */
    public static TpmUri swtpmSocket(Path socket) {
        Objects.requireNonNull(socket, "socket");
        String text = socket.toString();
        if (!socket.isAbsolute()) {
            throw new IllegalArgumentException("the swtpm socket path must be absolute, got '" + text + "'");
        }
        if (text.contains(",") || text.chars().anyMatch(Character::isWhitespace)) {
            throw new IllegalArgumentException("the swtpm socket path must not contain ',' or white space: '" + text
                    + "'");
        }
        int bytes = text.getBytes(java.nio.charset.StandardCharsets.UTF_8).length;
        if (bytes > MAX_SOCKET_PATH_BYTES) {
            throw new IllegalArgumentException("the swtpm socket path is " + bytes + " bytes long, Unix sockets allow "
                    + MAX_SOCKET_PATH_BYTES + ": '" + text + "'; use a shorter directory");
        }
        return new TpmUri(Kind.SWTPM_SOCKET, null, 0, socket.normalize(), DEFAULT_TIMEOUT);
    }

    /** A TPM character device such as {@code /dev/tpmrm0}. */
    public static TpmUri device(Path path) {
        return new TpmUri(Kind.DEVICE, null, 0, Objects.requireNonNull(path, "path"), DEFAULT_TIMEOUT);
    }

    /** This URI with another command timeout. */
    public TpmUri withTimeout(Duration newTimeout) {
        Objects.requireNonNull(newTimeout, "timeout");
        if (newTimeout.isNegative() || newTimeout.isZero()) {
            throw new IllegalArgumentException("TPM timeout must be positive, got " + newTimeout);
        }
        return new TpmUri(kind, host, port, devicePath, newTimeout);
    }

    /**
     * Parses {@code swtpm:socket=PATH[,timeout=MS]}, {@code swtpm:host=H,port=P[,timeout=MS]} or
     * {@code device:PATH[,timeout=MS]}.
     *
     * @throws IllegalArgumentException naming what is wrong and showing the accepted forms
     */
    public static TpmUri parse(String text) {
        Objects.requireNonNull(text, "text");
        int colon = text.indexOf(':');
        if (colon < 0) {
            throw invalid(text, "missing ':' after the transport name");
        }
        String scheme = text.substring(0, colon).trim();
        String rest = text.substring(colon + 1).trim();
        switch (scheme) {
            case "swtpm": {
                Map<String, String> options = options(text, rest, true);
                String socket = options.get("socket");
                if (socket != null) {
                    if (options.containsKey("host") || options.containsKey("port")) {
                        throw invalid(text, "socket= cannot be combined with host= or port=");
                    }
                    if (socket.isEmpty()) {
                        throw invalid(text, "socket= needs the path of swtpm's data socket");
                    }
                    TpmUri uri;
                    try {
                        uri = swtpmSocket(Path.of(socket));
                    } catch (IllegalArgumentException e) { // also InvalidPathException
                        throw invalid(text, e.getMessage());
                    }
                    return withTimeoutOption(uri, text, options);
                }
                String host = options.getOrDefault("host", "127.0.0.1");
                String portText = options.get("port");
                if (portText == null) {
                    throw invalid(text, "swtpm needs socket=PATH (its data socket) or port=P (its TCP data port)");
                }
                int port = parseInt(text, "port", portText);
                if (port > 65535) {
                    throw invalid(text, "port must be 1..65535, got " + port);
                }
                TpmUri uri = swtpm(host, port);
                return withTimeoutOption(uri, text, options);
            }
            case "device": {
                String[] parts = rest.split(",", 2);
                if (parts[0].isBlank()) {
                    throw invalid(text, "device needs a path, e.g. device:/dev/tpmrm0");
                }
                TpmUri uri = device(Path.of(parts[0].trim()));
                Map<String, String> options = parts.length > 1 ? options(text, parts[1], false) : Map.of();
                return withTimeoutOption(uri, text, options);
            }
            default:
                throw invalid(text, "unknown transport '" + scheme + "'");
        }
    }

    public Kind kind() {
        return kind;
    }

    /** The swtpm host; empty for a device. */
    public Optional<String> host() {
        return Optional.ofNullable(host);
    }

    /** The swtpm data port; 0 for a device. */
    public int port() {
        return port;
    }

    /** The device path; empty for swtpm. */
    public Optional<Path> devicePath() {
        return kind == Kind.DEVICE ? Optional.of(devicePath) : Optional.empty();
    }

    /** The swtpm data socket; empty unless {@link Kind#SWTPM_SOCKET}. */
    public Optional<Path> socketPath() {
        return kind == Kind.SWTPM_SOCKET ? Optional.of(devicePath) : Optional.empty();
    }

    public Duration timeout() {
        return timeout;
    }

    @Override
    public String toString() {
        String base;
        switch (kind) {
            case SWTPM:
                base = "swtpm:host=" + host + ",port=" + port;
                break;
            case SWTPM_SOCKET:
                base = "swtpm:socket=" + devicePath;
                break;
            default:
                base = "device:" + devicePath;
        }
        return timeout.equals(DEFAULT_TIMEOUT) ? base : base + ",timeout=" + timeout.toMillis();
    }

    @Override
    public boolean equals(Object o) {
        if (!(o instanceof TpmUri)) {
            return false;
        }
        TpmUri other = (TpmUri) o;
        return kind == other.kind && port == other.port && Objects.equals(host, other.host)
                && Objects.equals(devicePath, other.devicePath) && timeout.equals(other.timeout);
    }

    @Override
    public int hashCode() {
        return Objects.hash(kind, host, port, devicePath, timeout);
    }

    private static TpmUri withTimeoutOption(TpmUri uri, String text, Map<String, String> options) {
        String timeoutText = options.get("timeout");
        return timeoutText == null ? uri
                : uri.withTimeout(Duration.ofMillis(parseInt(text, "timeout", timeoutText)));
    }

    private static Map<String, String> options(String text, String list, boolean hostAndPortAllowed) {
        Map<String, String> options = new LinkedHashMap<>();
        for (String item : list.split(",")) {
            if (item.isBlank()) {
                continue;
            }
            int eq = item.indexOf('=');
            if (eq <= 0) {
                throw invalid(text, "option '" + item + "' is not key=value");
            }
            String key = item.substring(0, eq).trim();
            boolean known = key.equals("timeout")
                    || (hostAndPortAllowed && (key.equals("host") || key.equals("port") || key.equals("socket")));
            if (!known) {
                throw invalid(text, "unknown option '" + key + "'");
            }
            if (options.put(key, item.substring(eq + 1).trim()) != null) {
                throw invalid(text, "option '" + key + "' given twice");
            }
        }
        return options;
    }

    private static int parseInt(String text, String name, String value) {
        try {
            int parsed = Integer.parseInt(value);
            if (parsed <= 0) {
                throw invalid(text, name + " must be positive, got " + value);
            }
            return parsed;
        } catch (NumberFormatException e) {
            throw invalid(text, name + " is not a number: '" + value + "'");
        }
    }

    private static void checkPort(int port) {
        if (port < 1 || port > 65535) {
            throw new IllegalArgumentException("TPM port must be 1..65535, got " + port);
        }
    }

    private static IllegalArgumentException invalid(String text, String why) {
        return new IllegalArgumentException("invalid TPM URI '" + text + "': " + why
                + " (expected swtpm:socket=/path/to/server.sock, swtpm:host=127.0.0.1,port=2321 or device:/dev/tpmrm0)");
    }
}
