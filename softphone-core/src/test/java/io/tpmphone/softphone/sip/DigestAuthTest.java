package io.tpmphone.softphone.sip;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/** Known answers published in RFC 2617 §3.5 (MD5) and RFC 7616 §3.9.1 (MD5 and SHA-256). */
class DigestAuthTest {
    private static final String RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    private static final String RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

    @Test
    void rfc2617Md5() throws Exception {
        DigestAuth.Challenge c = new DigestAuth.Challenge("testrealm@host.com", "dcd98b7102dd2f0e8b11d0f600bfb0c093",
                null, "auth,auth-int", "5ccc069c403ebaf9f0171e9517f40e41");
        DigestAuth.Answer a = DigestAuth.answer(c, "GET", "/dir/index.html", "Mufasa",
                "Circle Of Life".toCharArray(), "0a4f113b", 1);
        assertEquals("6629fae49393a05397450978507c4ef1", a.response());
        assertEquals(Optional.of("00000001"), a.nc());
        assertEquals(Optional.of("auth"), a.qop());
        assertEquals(DigestAuth.Algorithm.MD5, a.algorithm());
    }

    @Test
    void rfc7616Md5AndSha256() throws Exception {
        for (String[] known : new String[][] {{"MD5", "8ca523f5e9506fed4657c9700eebdbec"},
                {"SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"}}) {
            DigestAuth.Challenge c = new DigestAuth.Challenge("http-auth@example.org", RFC7616_NONCE, known[0],
                    "auth, auth-int", "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS");
            DigestAuth.Answer a = DigestAuth.answer(c, "GET", "/dir/index.html", "Mufasa",
                    "Circle of Life".toCharArray(), RFC7616_CNONCE, 1);
            assertEquals(known[1], a.response(), known[0]);
        }
    }

    @Test
    void withoutQopTheResponseIsOverNonceAndHa2Only() throws Exception {
        DigestAuth.Challenge c = new DigestAuth.Challenge("r", "n", "SHA-256", null, null);
        DigestAuth.Answer a = DigestAuth.answer(c, "REGISTER", "sip:example.test", "u", "p".toCharArray(), "x", 1);
        assertTrue(a.qop().isEmpty());
        assertTrue(a.cnonce().isEmpty() && a.nc().isEmpty());
        // sha256(sha256("u:r:p") ":n:" sha256("REGISTER:sip:example.test")), computed independently (Python hashlib)
        assertEquals("ef7b6e6c89a30db9dd79690242a4a1bb4cb20772034872c15cfca8c51e0d4fb0", a.response());
        DigestAuth.Answer again = DigestAuth.answer(c, "REGISTER", "sip:example.test", "u", "q".toCharArray(), "x",
                1);
        assertTrue(!a.response().equals(again.response()), "the password must change the response");
    }

    @Test
    void theTopmostSupportedChallengeIsChosen() throws Exception {
        DigestAuth.Challenge sha512 = new DigestAuth.Challenge("r", "n1", "SHA-512-256", "auth", null);
        DigestAuth.Challenge sha256 = new DigestAuth.Challenge("r", "n2", "SHA-256", "auth", null);
        DigestAuth.Challenge md5 = new DigestAuth.Challenge("r", "n3", "MD5", "auth", null);
        assertEquals(sha256, DigestAuth.choose(List.of(sha512, sha256, md5)));
        assertEquals(md5, DigestAuth.choose(List.of(md5, sha256)));
        DigestAuth.UnsupportedChallengeException e = assertThrows(DigestAuth.UnsupportedChallengeException.class,
                () -> DigestAuth.choose(List.of(sha512)));
        assertTrue(e.getMessage().contains("SHA-512-256"), e.getMessage());
    }

    @Test
    void onlyAuthIntIsRefusedWithAReason() {
        DigestAuth.Challenge c = new DigestAuth.Challenge("r", "n", "MD5", "auth-int", null);
        DigestAuth.UnsupportedChallengeException e = assertThrows(DigestAuth.UnsupportedChallengeException.class,
                () -> DigestAuth.answer(c, "INVITE", "sip:b@x", "u", "p".toCharArray(), "c", 1));
        assertTrue(e.getMessage().contains("auth-int"), e.getMessage());
    }
}
