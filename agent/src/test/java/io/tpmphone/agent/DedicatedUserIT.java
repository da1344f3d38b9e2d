package io.tpmphone.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * An account named like the softphone's dedicated user that someone else made first, with real {@code useradd}: the
 * agent used to take any existing {@code tpmphone-*} account, so whoever pre-created it chose what the softphone ran
 * with (a login shell and a password, a home with their files, extra groups, the uid of another account). Needs root.
 */
class DedicatedUserIT {
    private static final String EXTRA_GROUP = "tpmphone-it-extra";
    private static final List<String> OURS = List.of("--system", "--user-group", "--no-create-home", "--home-dir",
            "/nonexistent", "--shell", "/usr/sbin/nologin", "--comment", "tpmphone softphone");

    private record Run(int exitCode, String output) {
    }

    private static Run run(String... command) throws Exception {
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        p.getOutputStream().close();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
        assertTrue(p.waitFor(30, TimeUnit.SECONDS), () -> String.join(" ", command) + " did not end: " + out);
        return new Run(p.exitValue(), out);
    }

    private static void mustRun(String... command) throws Exception {
        Run r = run(command);
        assertEquals(0, r.exitCode(), () -> String.join(" ", command) + " failed: " + r.output());
    }

    /** Removes {@code user} (and its group and home) if it is there, so a crashed earlier run leaves nothing behind. */
    private static void remove(String user) throws Exception {
        if (run("getent", "passwd", user).exitCode() == 0) {
            Run r = run("userdel", user);
            assertEquals(0, r.exitCode(), () -> "userdel " + user + ": " + r.output());
        }
        if (run("getent", "group", user).exitCode() == 0) {
            mustRun("groupdel", user);
        }
    }

    private static List<String> useradd(String user, List<String> options) {
        List<String> command = new ArrayList<>(List.of("useradd"));
        command.addAll(options);
        command.add(user);
        return command;
    }

    private static List<String> oursExcept(String option, String value) {
        List<String> options = new ArrayList<>(OURS);
        int i = options.indexOf(option);
        options.set(i + 1, value);
        return options;
    }

    static Stream<Arguments> preCreatedAccounts() {
        return Stream.of(
                Arguments.of("tpmphone-it-shell", "a login shell", oursExcept("--shell", "/bin/bash"), List.of(),
                        "its login shell is '/bin/bash'"),
                Arguments.of("tpmphone-it-comment", "someone else's comment",
                        oursExcept("--comment", "mallory's account"), List.of(), "its comment is 'mallory's account'"),
                Arguments.of("tpmphone-it-ordinary", "an ordinary user's uid",
                        List.of("--user-group", "--no-create-home", "--home-dir", "/nonexistent", "--shell",
                                "/usr/sbin/nologin", "--comment", "tpmphone softphone"), List.of(),
                        "is not a system uid"),
                Arguments.of("tpmphone-it-shareduid", "the uid of daemon", concat(OURS, "--non-unique", "--uid", "1"),
                        List.of(), "uid 1 is also the uid of daemon"),
                Arguments.of("tpmphone-it-sharedgid", "daemon's group as its primary group",
                        List.of("--system", "--no-user-group", "--gid", "daemon", "--no-create-home", "--home-dir",
                                "/nonexistent", "--shell", "/usr/sbin/nologin", "--comment", "tpmphone softphone"),
                        List.of(), "its primary group is daemon"),
                Arguments.of("tpmphone-it-groups", "a supplementary group", OURS,
                        List.of(List.of("usermod", "--append", "--groups", EXTRA_GROUP, "tpmphone-it-groups")),
                        "it is in other groups"),
                Arguments.of("tpmphone-it-password", "a password", OURS,
                        List.of(List.of("usermod", "--password", "$6$attacker$notarealhash", "tpmphone-it-password")),
                        "its password is not locked"));
    }

    private static List<String> concat(List<String> a, String... more) {
        List<String> all = new ArrayList<>(a);
        all.addAll(List.of(more));
        return all;
    }

    @ParameterizedTest(name = "{1}")
    @MethodSource("preCreatedAccounts")
    @Timeout(60)
    void aPreCreatedAccountThatIsNotOurs_isRefused(String user, String what, List<String> useraddOptions,
            List<List<String>> then, String reason) throws Exception {
        remove(user);
        boolean extraGroup = then.stream().anyMatch(c -> c.contains(EXTRA_GROUP));
        if (extraGroup && run("getent", "group", EXTRA_GROUP).exitCode() != 0) {
            mustRun("groupadd", "--system", EXTRA_GROUP);
        }
        try {
            mustRun(useradd(user, useraddOptions).toArray(String[]::new));
            for (List<String> c : then) {
                mustRun(c.toArray(String[]::new));
            }
            String account = run("getent", "passwd", user).output() + " / " + run("id", user).output();
            LaunchSpec spec = Fixture.spec(Path.of("/a/softphone-core.jar"), Path.of("/b/softphone.properties"),
                    List.of()).withChildUser(user);
            IOException refused = assertThrows(IOException.class, () -> MeasuredLauncher.resolveChildUser(spec),
                    () -> "an account with " + what + " (" + account + ") is refused");
            String message = refused.getMessage();
            assertTrue(message.contains(reason) && message.contains("not one the agent created")
                    && message.contains("userdel " + user) && message.contains("--child-user"),
                    () -> "the refusal of " + account + " says '" + reason + "' and what to do: " + message);
        } finally {
            remove(user);
            if (extraGroup) {
                mustRun("groupdel", EXTRA_GROUP);
            }
        }
    }

    @Test
    @Timeout(60)
    void aPreCreatedAccountWithAHomeOfItsOwn_isRefused(@TempDir Path dir) throws Exception {
        String user = "tpmphone-it-home";
        remove(user);
        Path home = dir.resolve("home");
        try {
            List<String> options = oursExcept("--home-dir", home.toString());
            options.set(options.indexOf("--no-create-home"), "--create-home");
            mustRun(useradd(user, options).toArray(String[]::new));
            Files.writeString(home.resolve(".sip-communicator.properties"), "planted=by someone else\n");
            LaunchSpec spec = Fixture.spec(Path.of("/a/softphone-core.jar"), Path.of("/b/softphone.properties"),
                    List.of()).withChildUser(user);
            IOException refused = assertThrows(IOException.class, () -> MeasuredLauncher.resolveChildUser(spec),
                    () -> "an account whose home " + home + " holds " + list(home) + " is refused");
            assertTrue(refused.getMessage().contains("its home directory is " + home + ", not /nonexistent"),
                    () -> "the refusal names the home: " + refused.getMessage());
        } finally {
            remove(user);
        }
    }

    @Test
    @Timeout(60)
    void anAccountTheAgentCreated_isAccepted_thenAndLater() throws Exception {
        String user = "tpmphone-it-created";
        remove(user);
        try {
            LaunchSpec spec = Fixture.spec(Path.of("/a/softphone-core.jar"), Path.of("/b/softphone.properties"),
                    List.of()).withChildUser(user);
            MeasuredLauncher.ChildUser created = MeasuredLauncher.resolveChildUser(spec);
            String account = run("getent", "passwd", user).output();
            assertTrue(account.startsWith(user + ":x:" + created.uid() + ":" + created.gid()
                    + ":tpmphone softphone:/nonexistent:/usr/sbin/nologin"), () -> "the account it made: " + account);
            assertEquals(created, MeasuredLauncher.resolveChildUser(spec), () -> "the existing account " + account
                    + " is accepted at the next launch");
        } finally {
            remove(user);
        }
    }

    /**
     * The group isolated softphones have as their real gid, pre-created by someone else with a member: that member's
     * processes would share the softphone's real gid. Under another name than the agent's own group, which other tests
     * use.
     */
    @Test
    @Timeout(60)
    void aPreCreatedNodumpGroupWithMembers_isRefused_andOneTheAgentCreated_isAccepted() throws Exception {
        String group = "tpmphone-it-nodump";
        if (run("getent", "group", group).exitCode() == 0) {
            mustRun("groupdel", group);
        }
        try {
            mustRun("groupadd", "--system", "--users", "daemon", group);
            String entry = run("getent", "group", group).output();
            IOException refused = assertThrows(IOException.class, () -> DedicatedAccounts.verifiedGroup(group),
                    () -> "the group " + entry + " is refused");
            assertTrue(refused.getMessage().contains("it lists members daemon")
                    && refused.getMessage().contains("groupdel " + group),
                    () -> "the refusal of " + entry + " names the member and what to do: " + refused.getMessage());
            mustRun("groupdel", group);
            long created = DedicatedAccounts.verifiedGroup(group);
            String made = run("getent", "group", group).output();
            assertEquals(group + ":x:" + created + ":", made, "the group the agent made: no members");
            assertEquals(created, DedicatedAccounts.verifiedGroup(group), () -> made + " is accepted later too");
        } finally {
            if (run("getent", "group", group).exitCode() == 0) {
                mustRun("groupdel", group);
            }
        }
    }

    private static List<String> list(Path dir) {
        try (Stream<Path> files = Files.list(dir)) {
            return files.map(p -> p.getFileName().toString()).toList();
        } catch (IOException e) {
            return List.of(e.toString());
        }
    }
}
