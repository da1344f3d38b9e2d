package io.tpmphone.server.internal;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import org.eclipse.jetty.io.Content;
import org.eclipse.jetty.server.Request;

/**
 * Reads a request's body as UTF-8 text. The caller has checked its Content-Length against its own maximum. Thread-safe
 * (stateless).
 */
public final class RequestBodies {
    private RequestBodies() {
    }

    /**
     * The whole body, decoded strictly: a byte sequence that is not UTF-8 is the client's error
     * ({@link CharacterCodingException}), never replaced. Decoded here rather than by Jetty, whose exception for it
     * changed between 12.0 ({@code CharacterCodingException}) and 12.1 (an {@code IllegalArgumentException} wrapping
     * it, with a WARN of its own in the server's log for every such request).
     *
     * @throws CharacterCodingException if the body is not UTF-8
     * @throws IOException if the body could not be read (the client went away, the connection was closed)
     */
    public static String utf8(Request request) throws IOException {
        ByteBuffer bytes = Content.Source.asByteBuffer(request);
        return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT).decode(bytes).toString();
    }
}
