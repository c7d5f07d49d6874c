import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialAlteration;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;

/**
 * Sets SCRAM users and ACLs on a broker, as scripts/kafka.sh (KAFKA_SASL=1) describes them on stdin.
 * One JVM for the whole policy: Kafka's AclCommand (not in the broker's jars) would take one per rule.
 * Run with the Java source launcher: java -cp 'lib/*' Acls.java admin.properties < policy
 *
 * Lines (blank and # lines skipped; every step is idempotent, so it runs at each start):
 *   user NAME PASSWORD                          SCRAM-SHA-256 credentials, created or replaced
 *   allow|deny PRINCIPAL OP[,OP] TYPE PATTERN NAME
 *       OP: READ, WRITE, CREATE, DESCRIBE, IDEMPOTENT_WRITE, ... (AclOperation)
 *       TYPE: TOPIC, GROUP, CLUSTER, TRANSACTIONAL_ID; PATTERN: LITERAL or PREFIXED
 */
public class Acls {
    public static void main(String[] args) throws Exception {
        Properties client = new Properties();
        try (var in = Files.newInputStream(Path.of(args[0]))) {
            client.load(in);
        }
        List<UserScramCredentialAlteration> users = new ArrayList<>();
        List<AclBinding> acls = new ArrayList<>();
        BufferedReader stdin = new BufferedReader(new InputStreamReader(System.in));
        for (String line; (line = stdin.readLine()) != null; ) {
            line = line.strip();
            if (line.isEmpty() || line.startsWith("#")) continue;
            String[] f = line.split("\\s+");
            if (f[0].equals("user") && f.length == 3) {
                users.add(new UserScramCredentialUpsertion(
                        f[1], new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192), f[2]));
            } else if ((f[0].equals("allow") || f[0].equals("deny")) && f.length == 6) {
                acls.addAll(bindings(f));
            } else {
                throw new IllegalArgumentException("cannot read policy line: " + line.split("\\s+")[0] + " ...");
            }
        }
        try (Admin admin = Admin.create(client)) {
            admin.alterUserScramCredentials(users).all().get();
            admin.createAcls(acls).all().get();
        }
        System.out.printf("kafka: %d SCRAM users and %d ACLs set%n", users.size(), acls.size());
    }

    private static List<AclBinding> bindings(String[] f) {
        AclPermissionType permission = f[0].equals("allow") ? AclPermissionType.ALLOW : AclPermissionType.DENY;
        ResourcePattern resource = new ResourcePattern(
                ResourceType.valueOf(f[3]), f[5], PatternType.valueOf(f[4]));
        List<AclBinding> out = new ArrayList<>();
        for (String op : f[2].split(",")) {
            out.add(new AclBinding(resource, new AccessControlEntry(f[1], "*", AclOperation.valueOf(op), permission)));
        }
        return out;
    }
}
