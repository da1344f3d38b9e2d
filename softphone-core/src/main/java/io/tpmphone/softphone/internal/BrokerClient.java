package io.tpmphone.softphone.internal;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.Map;

/**
 * The softphone's side of the agent broker (see the agent's {@code Broker} for the protocol). JDK only: the
 * measured child loads as little as it can. Not thread-safe: one request at a time.
 */
public final class BrokerClient implements AutoCloseable {
    private final SocketChannel channel;
    private final BufferedReader in;
    private final OutputStream out;

    private BrokerClient(SocketChannel channel) {
        this.channel = channel;
        this.in = new BufferedReader(new InputStreamReader(Channels.newInputStream(channel), StandardCharsets.UTF_8));
        this.out = Channels.newOutputStream(channel);
    }

    /** Connects and presents the one-time token. */
    public static BrokerClient connect(Path socket, String token) throws IOException {
        SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX);
        ch.connect(UnixDomainSocketAddress.of(socket));
        BrokerClient c = new BrokerClient(ch);
        String answer = c.request("HELLO " + token);
        if (!answer.equals("OK")) {
            c.close();
            throw new IOException("the agent broker refused us: " + answer);
        }
        return c;
    }

    /** A quote of the measured state over {@code binder}: fields akId, attest, signature, pcrs, values, log. */
    public Map<String, String> quote(byte[] binder) throws IOException {
        String answer = request("QUOTE " + HexFormat.of().formatHex(binder));
        if (!answer.startsWith("OK ")) {
            throw new IOException("the agent broker did not quote: " + answer);
        }
        Map<String, String> fields = new HashMap<>();
        for (String kv : answer.substring(3).split(" ")) {
            int eq = kv.indexOf('=');
            if (eq > 0) {
                fields.put(kv.substring(0, eq), kv.substring(eq + 1));
            }
        }
        return fields;
    }

    private String request(String line) throws IOException {
        out.write((line + "\n").getBytes(StandardCharsets.UTF_8));
        out.flush();
        String answer = in.readLine();
        if (answer == null) {
            throw new IOException("the agent broker closed the connection");
        }
        return answer;
    }

    @Override
    public void close() throws IOException {
        channel.close();
    }
}
