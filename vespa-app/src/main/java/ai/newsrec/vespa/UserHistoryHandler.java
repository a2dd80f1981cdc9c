package ai.newsrec.vespa;

import com.yahoo.component.annotation.Inject;
import com.yahoo.container.protect.Error;
import com.yahoo.container.jdisc.HttpRequest;
import com.yahoo.container.jdisc.HttpResponse;
import com.yahoo.container.jdisc.ThreadedHttpRequestHandler;
import com.yahoo.jdisc.http.HttpRequest.Method;
import com.yahoo.prelude.query.TrueItem;
import com.yahoo.search.Query;
import com.yahoo.search.Result;
import com.yahoo.search.query.profile.compiled.CompiledQueryProfile;
import com.yahoo.search.query.profile.compiled.CompiledQueryProfileRegistry;
import com.yahoo.search.result.ErrorMessage;
import com.yahoo.search.result.Hit;
import com.yahoo.search.searchchain.Execution;
import com.yahoo.search.searchchain.ExecutionFactory;
import com.yahoo.slime.Cursor;
import com.yahoo.slime.JsonFormat;
import com.yahoo.slime.Slime;
import com.yahoo.tensor.Tensor;

import java.io.IOException;
import java.io.OutputStream;
import java.util.Iterator;
import java.util.Map;
import java.util.concurrent.Executor;
import java.util.function.Supplier;

/**
 * One reader at a time, for the web tier, on the query cluster (no document-api there):
 * <ul>
 *   <li>{@code GET /newsrec/v1/user/U123}: {@code {"user_id", "has_read_items" (oldest first), "recall_embedding",
 *       "ranking_embedding"}} (vectors as lists of numbers), 404 for a user not held (or held without vectors), 400
 *       for a malformed id. Where the package binds user_id to a verified identity (user_identity_header in the
 *       default query profile), only that identity's own document: 401 without the header, 403 for another.</li>
 *   <li>{@code GET /newsrec/v1/user/?hits=20}: {@code {"users": [...]}}, up to hits (1 to MAX_LISTED) user ids for a
 *       trusted tier's reader list: one query of that many hits, never a visit of every user. Refused (403) where
 *       the package binds identities: a verified reader has no business listing the others.</li>
 * </ul>
 * The lookup is UserProfileSearcher's (a query on schema user with a term, never YQL text) on the built-in chain
 * "vespa": /search/ never returns user documents (NewsOnlySearcher), this handler returns one, or a list of ids.
 */
public class UserHistoryHandler extends ThreadedHttpRequestHandler {

    public static final String PATH = "/newsrec/v1/user/";
    public static final int MAX_LISTED = 100;
    static final int DEFAULT_LISTED = 20;
    static final String LOOKUP_CHAIN = "vespa";
    static final String ID_SUMMARY = "user_id_only";

    private final Supplier<Execution> executions;
    private final CompiledQueryProfile defaults;

    @Inject
    public UserHistoryHandler(Executor executor, ExecutionFactory executions, CompiledQueryProfileRegistry profiles) {
        this(executor, () -> executions.newExecution(LOOKUP_CHAIN), profiles.getComponent("default"));
    }

    /** `executions`: a new execution of the chain the lookups run on; `defaults`: the default query profile. */
    UserHistoryHandler(Executor executor, Supplier<Execution> executions, CompiledQueryProfile defaults) {
        super(executor);
        this.executions = executions;
        this.defaults = defaults;
    }

    @Override
    public HttpResponse handle(HttpRequest request) {
        if (request.getMethod() != Method.GET) return error(405, "Only GET is supported");
        String path = request.getUri().getRawPath();
        if ( ! path.startsWith(PATH)) return error(404, "No such path: " + path);
        String userId = path.substring(PATH.length());
        // the default query profile's fields, none of the request's parameters; the request for its headers
        Query query = new Query(request, Map.of(), defaults);
        return userId.isEmpty() ? list(query, request.getProperty("hits")) : user(query, userId);
    }

    private HttpResponse user(Query query, String userId) {
        if ( ! UserProfileSearcher.VALID_USER_ID.matcher(userId).matches())
            return error(400, "Invalid user id: expected 1 to 64 characters from [A-Za-z0-9_-]");
        ErrorMessage identity = UserProfileSearcher.identityMismatch(query, userId);
        if (identity != null)
            return error(identity.getCode() == Error.UNAUTHORIZED.code ? 401 : 403,
                         identity.getDetailedMessage() != null ? identity.getDetailedMessage() : identity.getMessage());
        Execution execution = executions.get();
        Result found = UserProfileSearcher.lookUp(userId, query, execution);
        if (found.hits().getError() != null) return error(503, "User lookup failed: " + found.hits().getError().getMessage());
        Hit hit = UserProfileSearcher.exactMatch(found, userId);
        if (hit == null || hit.getField("recall_embedding") == null || hit.getField("ranking_embedding") == null)
            return error(404, "Unknown user id '" + userId + "' (or no embeddings)");
        Slime slime = new Slime();
        Cursor root = slime.setObject();
        root.setString("user_id", userId);
        Cursor read = root.setArray("has_read_items");
        UserProfileSearcher.strings(hit.getField("has_read_items")).forEach(read::addString);
        values(root.setArray("recall_embedding"), (Tensor) hit.getField("recall_embedding"));
        values(root.setArray("ranking_embedding"), (Tensor) hit.getField("ranking_embedding"));
        return json(200, slime);
    }

    private HttpResponse list(Query query, String requested) {
        if ( ! query.properties().getString(UserProfileSearcher.IDENTITY_HEADER, "").isEmpty())
            return error(403, "Listing readers is refused where user ids are bound to verified identities");
        int hits = requested == null ? DEFAULT_LISTED
                   : requested.matches("[0-9]{1,3}") ? Integer.parseInt(requested) : -1;
        if (hits < 1 || hits > MAX_LISTED)
            return error(400, "hits must be an integer from 1 to " + MAX_LISTED);
        Query ids = UserProfileSearcher.subQuery(query, "user", new TrueItem(), hits);
        ids.getPresentation().setSummary(ID_SUMMARY);
        Execution execution = executions.get();
        Result result = execution.search(ids);
        execution.fill(result, ID_SUMMARY);
        if (result.hits().getError() != null) return error(503, "User listing failed: " + result.hits().getError().getMessage());
        Slime slime = new Slime();
        Cursor users = slime.setObject().setArray("users");
        for (Hit hit : result.hits().asList())
            if ( ! hit.isMeta() && hit.getField("user_id") != null) users.addString(hit.getField("user_id").toString());
        return json(200, slime);
    }

    private static void values(Cursor array, Tensor tensor) {
        for (Iterator<Double> values = tensor.valueIterator(); values.hasNext(); )
            array.addDouble(values.next());
    }

    private static HttpResponse error(int status, String message) {
        Slime slime = new Slime();
        slime.setObject().setString("message", message);
        return json(status, slime);
    }

    private static HttpResponse json(int status, Slime slime) {
        return new HttpResponse(status) {
            @Override
            public void render(OutputStream output) throws IOException {
                new JsonFormat(true).encode(output, slime);
            }

            @Override
            public String getContentType() {
                return "application/json";
            }
        };
    }

}
