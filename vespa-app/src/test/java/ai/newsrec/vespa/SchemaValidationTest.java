package ai.newsrec.vespa;

import com.yahoo.application.Application;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Proof that building the Application really validates: broken copies of the package must fail. */
class SchemaValidationTest {

    @Test
    void tensorDimensionMismatchInRankExpressionFails(@TempDir Path tmp) throws Exception {
        Path app = TestApp.copyOfPackage(tmp);
        // query(user_ranking) is tensor<float>(x[65]), declared in profile base only: the failure also
        // shows that the inherited input declaration is what the type check uses.
        addRankProfile(app, """
                    rank-profile broken inherits base {
                        inputs {
                            query(small) tensor<float>(x[10])
                        }
                        first-phase {
                            expression: sum(query(user_ranking) * query(small))
                        }
                    }
                """);
        String message = buildFailure(app);
        assertTrue(message.contains("broken") && message.contains("x[10]"), message);
    }

    @Test
    void unknownAttributeInRankExpressionFails(@TempDir Path tmp) throws Exception {
        Path app = TestApp.copyOfPackage(tmp);
        addRankProfile(app, """
                    rank-profile broken inherits base {
                        first-phase {
                            expression: attribute(no_such_field)
                        }
                    }
                """);
        String message = buildFailure(app);
        assertTrue(message.contains("no_such_field"), message);
    }

    @Test
    void missingParentSchemaFails(@TempDir Path tmp) throws Exception {
        Path app = TestApp.copyOfPackage(tmp);
        Files.delete(app.resolve("schemas/category_ctr.sd"));
        String message = buildFailure(app);
        assertTrue(message.contains("category_ctr"), message);
    }

    @Test
    void unmodifiedCopyBuilds(@TempDir Path tmp) {
        TestApp.load(TestApp.copyOfPackage(tmp)).close();
    }

    private static void addRankProfile(Path app, String profile) throws Exception {
        Path news = app.resolve("schemas/news.sd");
        String schema = Files.readString(news).stripTrailing();
        Files.writeString(news, schema.substring(0, schema.length() - 1) + profile + "}\n");  // before the last '}'
    }

    private static String buildFailure(Path app) {
        Throwable e = assertThrows(Throwable.class, () -> TestApp.load(app).close());
        StringBuilder messages = new StringBuilder();
        for (; e != null; e = e.getCause()) messages.append(e).append('\n');
        System.out.println("Build failed as expected: " + messages.toString().replace('\n', ' '));
        return messages.toString();
    }

}
