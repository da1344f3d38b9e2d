package io.tpmphone.server;

import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.InputStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The API description (served at {@code GET /v1/openapi.json}) lists exactly the routes the server serves. */
class OpenApiTest {
    /** A value for each path parameter of the description, shaped as the server's route expects. */
    private static final Map<String, String> SAMPLES = Map.of("{id}", "0123456789abcdef0123456789abcdef",
            "{host}", "host1");

    @Test
    void everyRouteIsDescribed_andEveryDescribedOperationIsServed(@TempDir Path dir) throws Exception {
        JsonNode api;
        try (InputStream in = AttestationServer.class.getResourceAsStream("/openapi.json")) {
            api = new ObjectMapper().readTree(in);
        }
        List<String[]> described = new ArrayList<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = api.get("paths").fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> path = it.next();
            String sample = path.getKey();
            for (Map.Entry<String, String> e : SAMPLES.entrySet()) {
                sample = sample.replace(e.getKey(), e.getValue());
            }
            for (Iterator<String> ops = path.getValue().fieldNames(); ops.hasNext(); ) {
                String op = ops.next();
                if (List.of("get", "post", "put", "delete", "patch").contains(op)) {
                    described.add(new String[] {op.toUpperCase(Locale.ROOT), path.getKey(), sample});
                }
            }
        }
        List<String> routes;
        try (AttestationServer server = AttestationServer.builder().stateDirectory(dir).adminToken("an-admin-token-for-this-test")
                .start()) {
            routes = server.routes();
        }
        assertTrue(routes.size() >= 10, routes.toString());
        List<String> undescribed = new ArrayList<>();
        for (String route : routes) {
            String method = route.substring(0, route.indexOf(' '));
            Pattern regex = Pattern.compile(route.substring(route.indexOf(' ') + 1));
            if (described.stream().noneMatch(d -> d[0].equals(method) && regex.matcher(d[2]).matches())) {
                undescribed.add(route);
            }
        }
        List<String> unserved = new ArrayList<>();
        for (String[] d : described) {
            boolean served = routes.stream().anyMatch(r -> r.startsWith(d[0] + " ")
                    && Pattern.compile(r.substring(r.indexOf(' ') + 1)).matcher(d[2]).matches());
            if (!served) {
                unserved.add(d[0] + " " + d[1]);
            }
        }
        assertTrue(undescribed.isEmpty(), "routes missing from openapi.json: " + undescribed);
        assertTrue(unserved.isEmpty(), "openapi.json describes what the server does not serve: " + unserved);
    }
}
