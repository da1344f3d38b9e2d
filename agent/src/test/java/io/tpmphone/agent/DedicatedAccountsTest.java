package io.tpmphone.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tpmphone.agent.DedicatedAccounts.Account;
import io.tpmphone.agent.DedicatedAccounts.GroupEntry;
import io.tpmphone.agent.DedicatedAccounts.PasswdEntry;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** The checks that an existing dedicated account is one the agent created: one tamper per property checked. */
class DedicatedAccountsTest {
    private static final String NAME = "tpmphone-alice-abcdefghijkl";
    private static final PasswdEntry OURS = new PasswdEntry(NAME, 990, 985, DedicatedAccounts.MARKER,
            DedicatedAccounts.NO_HOME, DedicatedAccounts.NOLOGIN);
    private static final PasswdEntry ROOT = new PasswdEntry("root", 0, 0, "root", "/root", "/bin/bash");
    private static final PasswdEntry DAEMON = new PasswdEntry("daemon", 1, 1, "daemon", "/usr/sbin",
            "/usr/sbin/nologin");

    private static Account ours() {
        return new Account(OURS, Optional.of("!"), List.of(985L), Optional.of(new GroupEntry(NAME, 985, List.of())),
                List.of(ROOT, DAEMON, OURS), false, 1000);
    }

    private static Account with(UnaryOperator<PasswdEntry> change) {
        Account a = ours();
        PasswdEntry e = change.apply(a.entry());
        List<PasswdEntry> everyone = a.everyone().stream().map(o -> o.name().equals(NAME) ? e : o).toList();
        return new Account(e, a.shadowPassword(), a.groups(), a.primaryGroup(), everyone, a.homeExists(), a.uidMin());
    }

    private static void assertRefused(Account account, String reason) {
        List<String> problems = DedicatedAccounts.problems(account);
        assertEquals(1, problems.size(), () -> "exactly one problem, about " + reason + ": " + problems);
        assertTrue(problems.get(0).contains(reason), () -> "the problem names " + reason + ": " + problems);
    }

    @Test
    @Timeout(10)
    void anAccountAsTheAgentCreatesIt_hasNoProblems() {
        assertEquals(List.of(), DedicatedAccounts.problems(ours()), "the agent's own account");
        // Locked as useradd leaves it ("!") or with "*" or "!*", another shell that refuses logins.
        for (String locked : List.of("!", "*", "!*", "!$6$salt$hash")) {
            Account a = ours();
            assertEquals(List.of(), DedicatedAccounts.problems(new Account(a.entry(), Optional.of(locked), a.groups(),
                    a.primaryGroup(), a.everyone(), false, 1000)), "password field " + locked);
        }
        assertEquals(List.of(), DedicatedAccounts.problems(with(e -> new PasswdEntry(e.name(), e.uid(), e.gid(),
                e.comment(), e.home(), "/bin/false"))), "/bin/false refuses logins too");
    }

    @Test
    @Timeout(10)
    void anotherComment_isRefused() {
        assertRefused(with(e -> new PasswdEntry(e.name(), e.uid(), e.gid(), "admin's test account", e.home(),
                e.shell())), "its comment is 'admin's test account'");
    }

    @Test
    @Timeout(10)
    void anOrdinaryUid_isRefused() {
        assertRefused(with(e -> new PasswdEntry(e.name(), 1000, e.gid(), e.comment(), e.home(), e.shell())),
                "uid 1000 is not a system uid");
    }

    @Test
    @Timeout(10)
    void aUidAnotherAccountHas_isRefused() {
        assertRefused(with(e -> new PasswdEntry(e.name(), 1, e.gid(), e.comment(), e.home(), e.shell())),
                "uid 1 is also the uid of daemon");
    }

    @Test
    @Timeout(10)
    void aLoginShell_isRefused() {
        assertRefused(with(e -> new PasswdEntry(e.name(), e.uid(), e.gid(), e.comment(), e.home(), "/bin/bash")),
                "its login shell is '/bin/bash'");
    }

    @Test
    @Timeout(10)
    void anUnlockedOrEmptyOrMissingPassword_isRefused() {
        Account a = ours();
        assertRefused(new Account(a.entry(), Optional.of("$6$salt$hash"), a.groups(), a.primaryGroup(), a.everyone(),
                false, 1000), "its password is not locked");
        assertRefused(new Account(a.entry(), Optional.of(""), a.groups(), a.primaryGroup(), a.everyone(), false,
                1000), "it has an empty password");
        assertRefused(new Account(a.entry(), Optional.empty(), a.groups(), a.primaryGroup(), a.everyone(), false,
                1000), "no shadow entry");
    }

    @Test
    @Timeout(10)
    void anExistingHome_isRefused() {
        Account a = ours();
        assertRefused(new Account(a.entry(), a.shadowPassword(), a.groups(), a.primaryGroup(), a.everyone(), true,
                1000), "home directory /nonexistent exists");
    }

    @Test
    @Timeout(10)
    void aHomeOtherThanNonexistent_isRefused_evenIfItDoesNotExistYet() {
        // A local user who may write /var/tmp could create the home later and fill it (the JVM's user.home).
        assertRefused(with(e -> new PasswdEntry(e.name(), e.uid(), e.gid(), e.comment(), "/var/tmp/softphone-home",
                e.shell())), "its home directory is /var/tmp/softphone-home, not /nonexistent");
    }

    @Test
    @Timeout(10)
    void supplementaryGroups_areRefused() {
        Account a = ours();
        assertRefused(new Account(a.entry(), a.shadowPassword(), List.of(985L, 27L, 6L), a.primaryGroup(),
                a.everyone(), false, 1000), "other groups (gids 27, 6)");
    }

    @Test
    @Timeout(10)
    void aPrimaryGroupNotItsOwn_isRefused() {
        Account a = ours();
        assertRefused(new Account(a.entry(), a.shadowPassword(), a.groups(), Optional.of(new GroupEntry("staff", 985,
                List.of())), a.everyone(), false, 1000), "its primary group is staff");
        assertRefused(new Account(a.entry(), a.shadowPassword(), a.groups(), Optional.of(new GroupEntry(NAME, 985,
                List.of("mallory"))), a.everyone(), false, 1000), "lists members mallory");
        assertRefused(new Account(a.entry(), a.shadowPassword(), a.groups(), Optional.empty(), a.everyone(), false,
                1000), "no group entry");
        PasswdEntry sharer = new PasswdEntry("mallory", 1001, 985, "", "/home/mallory", "/bin/bash");
        List<PasswdEntry> everyone = new java.util.ArrayList<>(a.everyone());
        everyone.add(sharer);
        assertRefused(new Account(a.entry(), a.shadowPassword(), a.groups(), a.primaryGroup(), everyone, false, 1000),
                "gid 985 is also the primary group of mallory");
    }

    @Test
    @Timeout(10)
    void passwdAndGroupLines_areParsedStrictly() {
        assertEquals(Optional.of(OURS), PasswdEntry.parse(NAME + ":x:990:985:tpmphone softphone:/nonexistent:"
                + "/usr/sbin/nologin"));
        assertEquals(Optional.empty(), PasswdEntry.parse("short:x:1:1:x:/"), "six fields");
        assertEquals(Optional.empty(), PasswdEntry.parse("a:x:-1:1:x:/:/bin/sh"), "a negative uid");
        assertEquals(Optional.of(new GroupEntry("g", 5, List.of("a", "b"))), GroupEntry.parse("g:x:5:a,b"));
        assertEquals(Optional.of(new GroupEntry("g", 5, List.of())), GroupEntry.parse("g:x:5:"));
    }

    @Test
    @Timeout(10)
    void uidMin_comesFromLoginDefs_orDefaultsTo1000(@TempDir Path dir) throws Exception {
        Path defs = Files.writeString(dir.resolve("login.defs"), "# comment\nUID_MIN\t\t\t 500\nUID_MAX 60000\n");
        assertEquals(500, DedicatedAccounts.uidMin(defs), "from the file");
        assertEquals(1000, DedicatedAccounts.uidMin(dir.resolve("missing")), "default");
    }

    @Test
    @Timeout(10)
    void theNodumpGroup_mustBeASystemGroupWithoutMembers_andNobodysPrimaryGroup() {
        List<PasswdEntry> everyone = List.of(ROOT, DAEMON, OURS);
        assertEquals(List.of(), DedicatedAccounts.groupProblems(new GroupEntry("tpmphone-nodump", 980, List.of()),
                everyone, 1000), "as groupadd --system makes it");
        List<List<String>> refused = List.of(
                DedicatedAccounts.groupProblems(new GroupEntry("tpmphone-nodump", 1000, List.of()), everyone, 1000),
                DedicatedAccounts.groupProblems(new GroupEntry("tpmphone-nodump", 0, List.of()), List.of(OURS), 1000),
                DedicatedAccounts.groupProblems(new GroupEntry("tpmphone-nodump", 980, List.of("mallory")), everyone,
                        1000),
                DedicatedAccounts.groupProblems(new GroupEntry("tpmphone-nodump", 985, List.of()), everyone, 1000));
        List<String> expected = List.of("gid 1000 is not a system gid", "gid 0 is not a system gid",
                "it lists members mallory", "it is the primary group of " + NAME);
        for (int i = 0; i < expected.size(); i++) {
            List<String> problems = refused.get(i);
            String reason = expected.get(i);
            assertTrue(problems.size() == 1 && problems.get(0).contains(reason), () -> "one problem, " + reason + ": "
                    + problems);
        }
    }
}
