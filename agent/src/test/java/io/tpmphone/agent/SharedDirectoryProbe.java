package io.tpmphone.agent;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.List;

/**
 * A stand-in softphone for {@link PrivateSharedDirectoriesIT}, launched as the isolated child: reports, for each
 * directory every user may write, whether it sees the host's file there, and leaves a file of its own; then waits for
 * its stdin to close. Arguments: {@code --config NAME HOST_FILE CHILD_FILE}. JDK classes only: its jar holds this
 * class alone.
 */
public final class SharedDirectoryProbe {
    static final List<String> DIRECTORIES = List.of("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/dev/mqueue");

    private SharedDirectoryProbe() {
    }

    public static void main(String[] args) throws IOException {
        String hostFile = args[2];
        String childFile = args[3];
        for (String dir : DIRECTORIES) {
            Path d = Path.of(dir);
            StringBuilder line = new StringBuilder("probe ").append(dir).append(" sees-host-file=")
                    .append(Files.exists(d.resolve(hostFile), LinkOption.NOFOLLOW_LINKS));
            try {
                // A file in an mqueue file system is a message queue: it can be created, not written.
                Files.createFile(d.resolve(childFile));
                line.append(" wrote=true");
            } catch (IOException | RuntimeException e) {
                line.append(" wrote=false (").append(e).append(')');
            }
            System.out.println(line);
        }
        System.out.println("probe ready");
        System.out.flush();
        while (System.in.read() >= 0) {
            // until the test closes our stdin
        }
    }
}
