package io.tpmphone.agent;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The system accounts the agent creates for isolated softphones ({@link LaunchSpec#DEDICATED_USER_PREFIX}), and the
 * check that an existing one is what the agent would have created. The name alone proves nothing: whoever could run
 * {@code useradd} first (another administrator, a package, an attacker with a root moment) decides what the softphone
 * runs with — a login shell and a password, a home directory full of their files (the JVM's {@code user.home}), extra
 * groups, or a uid another account shares, whose processes could then take over the softphone's broker session.
 *
 * <p>Ours: comment (GECOS) {@value #MARKER}; a system uid (below {@code UID_MIN} of {@code /etc/login.defs}) that no
 * other account has; a group of its own, named like it, that no other account has as primary group and that lists no
 * members; no other groups; a shell that refuses logins; a locked password; a home directory that does not exist.
 * Accounts made by earlier versions of the agent pass. Likewise the group {@value #NODUMP_GROUP}, the real gid of every
 * isolated softphone ({@link #nodumpGroup()}): a system gid, no members, nobody's primary group.
 *
 * <p>Reads the accounts through NSS ({@code getent}, {@code id}), so it needs root (for the shadow entry), as isolation
 * does. Stateless and thread-safe; two agents creating one account at once are settled by {@code useradd}'s lock.
 */
final class DedicatedAccounts {
    private static final Logger LOG = LoggerFactory.getLogger(DedicatedAccounts.class);

    /** The comment (GECOS field) of every account the agent creates. */
    static final String MARKER = "tpmphone softphone";
    /** The shell the agent gives its accounts. */
    static final String NOLOGIN = "/usr/sbin/nologin";
    /** The home directory the agent gives its accounts; never created. */
    static final String NO_HOME = "/nonexistent";
    /** Shells that refuse every login. */
    static final Set<String> NO_LOGIN_SHELLS = Set.of(NOLOGIN, "/sbin/nologin", "/bin/false", "/usr/bin/false");
    /** {@code UID_MIN} and {@code GID_MIN} when {@code /etc/login.defs} does not say. */
    static final long DEFAULT_UID_MIN = 1000;
    /**
     * The group every isolated softphone has as its real gid, while its effective gid stays its own group. A process
     * whose real and effective gids differ when it calls {@code execve} is treated by the kernel like a set-gid
     * program: it is not dumpable ({@code fs.suid_dumpable}), and no process without {@code CAP_SYS_PTRACE} passes
     * the ptrace access check against it, since that asks the caller's gid to equal all of the target's (real,
     * effective, saved) — so not even a process of the softphone's own uid can ptrace it, read its
     * {@code /proc/PID/mem} or copy its descriptors with {@code pidfd_getfd}. The group owns nothing and has no
     * members; the agent creates it ({@code groupadd --system}) when it is missing (docs/decisions/0006).
     */
    static final String NODUMP_GROUP = "tpmphone-nodump";
    private static final Path LOGIN_DEFS = Path.of("/etc/login.defs");

    private DedicatedAccounts() {
    }

    /** One line of {@code /etc/passwd} (or its NSS equivalent). */
    record PasswdEntry(String name, long uid, long gid, String comment, String home, String shell) {
        static Optional<PasswdEntry> parse(String line) {
            String[] f = line.split(":", -1);
            if (f.length != 7 || !f[2].matches("[0-9]{1,10}") || !f[3].matches("[0-9]{1,10}")) {
                return Optional.empty();
            }
            return Optional.of(new PasswdEntry(f[0], Long.parseLong(f[2]), Long.parseLong(f[3]), f[4], f[5], f[6]));
        }
    }

    /** One line of {@code /etc/group}. */
    record GroupEntry(String name, long gid, List<String> members) {
        GroupEntry {
            members = List.copyOf(members);
        }

        static Optional<GroupEntry> parse(String line) {
            String[] f = line.split(":", -1);
            if (f.length != 4 || !f[2].matches("[0-9]{1,10}")) {
                return Optional.empty();
            }
            List<String> members = f[3].isEmpty() ? List.of() : List.of(f[3].split(","));
            return Optional.of(new GroupEntry(f[0], Long.parseLong(f[2]), members));
        }
    }

    /**
     * What the system says about one account.
     *
     * @param entry          its passwd entry
     * @param shadowPassword the password field of its shadow entry; empty if it has none
     * @param groups         every group it is in ({@code id -G}), the primary one included
     * @param primaryGroup   the group entry of its primary gid; empty if there is none
     * @param everyone       every passwd entry NSS lists, itself included
     * @param homeExists     whether its home directory exists (a symbolic link counts, followed or not)
     * @param uidMin         the first uid of ordinary users ({@code UID_MIN})
     */
    record Account(PasswdEntry entry, Optional<String> shadowPassword, List<Long> groups,
                   Optional<GroupEntry> primaryGroup, List<PasswdEntry> everyone, boolean homeExists, long uidMin) {
        Account {
            Objects.requireNonNull(entry, "entry");
            groups = List.copyOf(groups);
            everyone = List.copyOf(everyone);
        }
    }

    /**
     * Why {@code account} is not one the agent created, one phrase per reason; empty if it is. Pure: the checks of
     * {@link #verify} on what was read.
     */
    static List<String> problems(Account account) {
        PasswdEntry e = account.entry();
        List<String> problems = new ArrayList<>();
        if (!e.comment().equals(MARKER)) {
            problems.add("its comment is '" + e.comment() + "', not '" + MARKER + "'");
        }
        if (e.uid() >= account.uidMin()) {
            problems.add("uid " + e.uid() + " is not a system uid (UID_MIN is " + account.uidMin() + ")");
        }
        List<String> sameUid = account.everyone().stream().filter(o -> o.uid() == e.uid() && !o.name()
                .equals(e.name())).map(PasswdEntry::name).toList();
        if (!sameUid.isEmpty()) {
            problems.add("uid " + e.uid() + " is also the uid of " + String.join(", ", sameUid));
        }
        if (account.primaryGroup().isEmpty()) {
            problems.add("its primary gid " + e.gid() + " has no group entry");
        } else {
            GroupEntry g = account.primaryGroup().get();
            if (!g.name().equals(e.name())) {
                problems.add("its primary group is " + g.name() + " (gid " + g.gid() + "), not a group of its own named"
                        + " " + e.name());
            }
            if (!g.members().isEmpty()) {
                problems.add("its group " + g.name() + " lists members " + String.join(", ", g.members()));
            }
        }
        List<String> sameGroup = account.everyone().stream().filter(o -> o.gid() == e.gid() && !o.name()
                .equals(e.name())).map(PasswdEntry::name).toList();
        if (!sameGroup.isEmpty()) {
            problems.add("gid " + e.gid() + " is also the primary group of " + String.join(", ", sameGroup));
        }
        List<Long> others = account.groups().stream().filter(g -> g != e.gid()).toList();
        if (!others.isEmpty()) {
            problems.add("it is in other groups (gids " + others.stream().map(String::valueOf)
                    .reduce((a, b) -> a + ", " + b).orElse("") + ")");
        }
        if (!NO_LOGIN_SHELLS.contains(e.shell())) {
            problems.add("its login shell is '" + e.shell() + "', not " + NOLOGIN);
        }
        String password = account.shadowPassword().orElse("");
        if (!password.startsWith("!") && !password.startsWith("*")) {
            problems.add(account.shadowPassword().isEmpty() ? "it has no shadow entry that locks its password"
                    : password.isEmpty() ? "it has an empty password" : "its password is not locked");
        }
        if (!e.home().equals(NO_HOME)) {
            // A home that does not exist now could be made later by whoever may write its parent directory.
            problems.add("its home directory is " + e.home() + ", not " + NO_HOME);
        } else if (account.homeExists()) {
            problems.add("its home directory " + e.home() + " exists (the agent's accounts have " + NO_HOME
                    + ", never created)");
        }
        return List.copyOf(problems);
    }

    /**
     * Throws unless the existing account {@code user} is one the agent created ({@link #problems}).
     *
     * @throws IOException naming every difference and what to do, or if the account cannot be read
     */
    static void verify(String user) throws IOException {
        List<String> problems = problems(read(user));
        if (!problems.isEmpty()) {
            throw new IOException("the account " + user + " exists but is not one the agent created for a softphone: "
                    + String.join("; ", problems) + ". The softphone would run with whatever that account gives and"
                    + " share it with whoever made it. If nothing else uses " + user + ", remove it (userdel " + user
                    + ") and the agent creates its own at the next launch; otherwise give the softphone another user"
                    + " with --child-user");
        }
    }

    /** Creates {@code user}: a system user with a group of its own, no home, no login, a locked password. */
    static void create(String user) throws IOException {
        MeasuredLauncher.Result r = MeasuredLauncher.run(List.of("useradd", "--system", "--user-group",
                "--no-create-home", "--home-dir", NO_HOME, "--shell", NOLOGIN, "--comment", MARKER, user), 30);
        if (r.exitCode() != 0 && !exists(user)) { // another agent may have created it meanwhile: verified next
            throw new IOException("cannot create the softphone's user " + user + " (useradd exit " + r.exitCode()
                    + ": " + r.output() + "): the agent needs root to create it, or create it yourself: useradd"
                    + " --system --user-group --no-create-home --home-dir " + NO_HOME + " --shell " + NOLOGIN
                    + " --comment '" + MARKER + "' " + user);
        }
        LOG.info("created the softphone's own user {}", user);
    }

    static boolean exists(String user) throws IOException {
        return MeasuredLauncher.run(List.of("getent", "passwd", user), 10).exitCode() == 0;
    }

    private static Account read(String user) throws IOException {
        PasswdEntry entry = getent("passwd", user).flatMap(PasswdEntry::parse).orElseThrow(() -> new IOException(
                "cannot read the passwd entry of " + user + " (getent passwd " + user + ")"));
        Optional<String> shadow = getent("shadow", user).map(l -> l.split(":", -1)).filter(f -> f.length > 1)
                .map(f -> f[1]);
        Optional<GroupEntry> group = getent("group", Long.toString(entry.gid())).flatMap(GroupEntry::parse);
        MeasuredLauncher.Result ids = MeasuredLauncher.run(List.of("id", "-G", user), 10);
        if (ids.exitCode() != 0 || !ids.output().matches("[0-9]+( [0-9]+)*")) {
            throw new IOException("cannot read the groups of " + user + " (id -G: " + ids.output() + ")");
        }
        List<Long> groups = List.of(ids.output().split(" ")).stream().map(Long::parseLong).toList();
        List<PasswdEntry> everyone = everyone();
        boolean home = !entry.home().isEmpty() && (Files.exists(Path.of(entry.home()))
                || Files.exists(Path.of(entry.home()), LinkOption.NOFOLLOW_LINKS));
        return new Account(entry, shadow, groups, group, everyone, home, uidMin(LOGIN_DEFS));
    }

    /** Every passwd entry NSS lists. */
    private static List<PasswdEntry> everyone() throws IOException {
        MeasuredLauncher.Result all = MeasuredLauncher.run(List.of("getent", "passwd"), 30);
        if (all.exitCode() != 0) {
            throw new IOException("cannot list the accounts (getent passwd exit " + all.exitCode() + ")");
        }
        return all.output().lines().map(PasswdEntry::parse).flatMap(Optional::stream).toList();
    }

    private static Optional<String> getent(String database, String key) throws IOException {
        MeasuredLauncher.Result r = MeasuredLauncher.run(List.of("getent", database, key), 10);
        return r.exitCode() == 0 ? r.output().lines().findFirst() : Optional.empty();
    }

    /** {@code UID_MIN} of a login.defs file, {@link #DEFAULT_UID_MIN} if it has none or cannot be read. */
    static long uidMin(Path loginDefs) {
        return loginDefsNumber(loginDefs, "UID_MIN");
    }

    /** {@code GID_MIN} of a login.defs file, {@link #DEFAULT_UID_MIN} if it has none or cannot be read. */
    static long gidMin(Path loginDefs) {
        return loginDefsNumber(loginDefs, "GID_MIN");
    }

    private static long loginDefsNumber(Path loginDefs, String key) {
        Pattern line = Pattern.compile("\\s*" + key + "\\s+([0-9]{1,10})\\s*");
        try {
            for (String l : Files.readAllLines(loginDefs, StandardCharsets.UTF_8)) {
                Matcher m = line.matcher(l);
                if (m.matches()) {
                    return Long.parseLong(m.group(1));
                }
            }
        } catch (IOException | java.io.UncheckedIOException e) {
            LOG.debug("cannot read {} ({}); {} {}", loginDefs, e.toString(), key, DEFAULT_UID_MIN);
        }
        return DEFAULT_UID_MIN;
    }

    /**
     * Why {@code group} is not the agent's {@link #NODUMP_GROUP}, one phrase per reason; empty if it is: a system gid,
     * no members, nobody's primary group.
     */
    static List<String> groupProblems(GroupEntry group, List<PasswdEntry> everyone, long gidMin) {
        List<String> problems = new ArrayList<>();
        if (group.gid() == 0 || group.gid() >= gidMin) {
            problems.add("gid " + group.gid() + " is not a system gid (GID_MIN is " + gidMin + ")");
        }
        if (!group.members().isEmpty()) {
            problems.add("it lists members " + String.join(", ", group.members()));
        }
        List<String> primary = everyone.stream().filter(e -> e.gid() == group.gid()).map(PasswdEntry::name).toList();
        if (!primary.isEmpty()) {
            problems.add("it is the primary group of " + String.join(", ", primary));
        }
        return List.copyOf(problems);
    }

    /** The gid of {@link #NODUMP_GROUP}, created if missing, verified ({@link #groupProblems}). */
    static long nodumpGroup() throws IOException {
        return verifiedGroup(NODUMP_GROUP);
    }

    /**
     * The gid of the group {@code name}, created ({@code groupadd --system}) if missing and verified to be one the
     * agent would have created: {@link #nodumpGroup()} with another name, for tests.
     *
     * @throws IOException if it cannot be created, or exists and is not what the agent creates
     */
    static long verifiedGroup(String name) throws IOException {
        if (getent("group", name).isEmpty()) {
            MeasuredLauncher.Result r = MeasuredLauncher.run(List.of("groupadd", "--system", name), 30);
            if (r.exitCode() != 0 && getent("group", name).isEmpty()) {
                throw new IOException("cannot create the group " + name + " that isolated softphones run with as"
                        + " their real gid (groupadd exit " + r.exitCode() + ": " + r.output() + "): the agent needs"
                        + " root, or create it yourself: groupadd --system " + name);
            }
            LOG.info("created the group {} (the real gid of isolated softphones: not dumpable)", name);
        }
        GroupEntry group = getent("group", name).flatMap(GroupEntry::parse).orElseThrow(() -> new IOException(
                "cannot read the group entry of " + name + " (getent group " + name + ")"));
        List<String> problems = groupProblems(group, everyone(), gidMin(LOGIN_DEFS));
        if (!problems.isEmpty()) {
            throw new IOException("the group " + name + " exists but is not the one the agent creates as the real"
                    + " gid of isolated softphones: " + String.join("; ", problems) + ". If nothing else uses it,"
                    + " remove it (groupdel " + name + ") and the agent creates its own at the next launch");
        }
        return group.gid();
    }
}
