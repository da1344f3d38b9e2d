package io.tpmphone.swtpm;

import java.io.DataInputStream;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;

/** Hand-built TPM 2.0 commands (TCG TPM 2.0 Part 3) over a raw socket, for tests. */
final class RawTpm {
    static final int TPM_CC_GET_RANDOM = 0x0000017B;
    static final short TPM_ST_NO_SESSIONS = (short) 0x8001;

    private RawTpm() {
    }

    /** TPM2_GetRandom: tag, commandSize = 12, TPM_CC_GetRandom, UINT16 bytesRequested. */
    static byte[] getRandomCommand(int bytesRequested) {
        return ByteBuffer.allocate(12)
                .putShort(TPM_ST_NO_SESSIONS)
                .putInt(12)
                .putInt(TPM_CC_GET_RANDOM)
                .putShort((short) bytesRequested)
                .array();
    }

    /** Sends one command and reads the whole response (5 s timeouts). */
    static byte[] exchange(String host, int port, byte[] command) throws IOException {
        try (Socket socket = new Socket()) {
            socket.connect(new InetSocketAddress(host, port), 5_000);
            socket.setSoTimeout(5_000);
            socket.getOutputStream().write(command);
            DataInputStream in = new DataInputStream(socket.getInputStream());
            byte[] header = new byte[10];
            in.readFully(header);
            int size = ByteBuffer.wrap(header, 2, 4).getInt();
            byte[] response = new byte[size];
            System.arraycopy(header, 0, response, 0, 10);
            in.readFully(response, 10, size - 10);
            return response;
        }
    }

    /** Sends one command over a swtpm's Unix data socket and reads the whole response. */
    static byte[] exchange(Path socket, byte[] command) throws IOException {
        try (SocketChannel channel = SocketChannel.open(StandardProtocolFamily.UNIX)) {
            channel.connect(UnixDomainSocketAddress.of(socket));
            channel.write(ByteBuffer.wrap(command));
            DataInputStream in = new DataInputStream(Channels.newInputStream(channel));
            byte[] header = new byte[10];
            in.readFully(header);
            int size = ByteBuffer.wrap(header, 2, 4).getInt();
            byte[] response = new byte[size];
            System.arraycopy(header, 0, response, 0, 10);
            in.readFully(response, 10, size - 10);
            return response;
        }
    }

    /** Sends one command to the TPM's data channel, whichever kind it has. */
    static byte[] exchange(SwtpmProcess tpm, byte[] command) throws IOException {
        return tpm.isInsecureTcp() ? exchange(tpm.host(), tpm.port(), command) : exchange(tpm.serverSocket(), command);
    }

    /** Asserts-free helper: the response code of a response. */
    static int responseCode(byte[] response) {
        return ByteBuffer.wrap(response, 6, 4).getInt();
    }
}
