package io.tpmphone.benchmarks;

import io.tpmphone.server.audit.AuditReader;
import io.tpmphone.server.audit.AuditRecord;
import java.nio.file.Path;
import java.util.List;

/** Reads a whole audit log page by page, for the benchmarks that check every acknowledged appraisal was recorded. */
final class AuditRecords {
    /** What to do with each record. */
    @FunctionalInterface
    interface Visitor {
        void visit(AuditRecord record) throws Exception;
    }

    private AuditRecords() {
    }

    /** Visits every record in sequence order: PostgreSQL's log when {@code url} is given, else the SQLite file {@code db}. */
    static void forEach(String url, Path db, Visitor visitor) throws Exception {
        try (AuditReader reader = url == null ? AuditReader.open(db) : AuditReader.openDatabase(url)) {
            long from = 1;
            while (true) {
                List<AuditRecord> page = reader.records(from, AuditReader.MAX_PAGE);
                if (page.isEmpty()) {
                    return;
                }
                for (AuditRecord r : page) {
                    visitor.visit(r);
                }
                from = page.get(page.size() - 1).seq() + 1;
            }
        }
    }
}
