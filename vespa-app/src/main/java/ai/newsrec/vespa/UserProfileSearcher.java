package ai.newsrec.vespa;

import com.yahoo.component.chain.dependencies.After;
import com.yahoo.data.access.Inspectable;
import com.yahoo.data.access.Inspector;
import com.yahoo.prelude.query.AndItem;
import com.yahoo.prelude.query.CompositeItem;
import com.yahoo.prelude.query.HasIndexItem;
import com.yahoo.prelude.query.InItem;
import com.yahoo.prelude.query.Item;
import com.yahoo.prelude.query.NearestNeighborItem;
import com.yahoo.prelude.query.NotItem;
import com.yahoo.prelude.query.NullItem;
import com.yahoo.prelude.query.StringInItem;
import com.yahoo.prelude.query.TrueItem;
import com.yahoo.prelude.query.WordItem;
import com.yahoo.processing.request.CompoundName;
import com.yahoo.search.Query;
import com.yahoo.search.Result;
import com.yahoo.search.Searcher;
import com.yahoo.search.result.ErrorMessage;
import com.yahoo.search.result.Hit;
import com.yahoo.search.searchchain.Execution;
import com.yahoo.search.yql.MinimalQueryInserter;
import com.yahoo.tensor.Tensor;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicReference;
import java.util.regex.Pattern;

/**
 * Turns {@code /search/?user_id=U123} into a personalised news query.
 *
 * <ol>
 *   <li>Validates user_id strictly; it is only ever used as a term value, never pasted into YQL. Where the package
 *       names user_identity_header, user_id must be the verified identity that header carries (401, 403).</li>
 *   <li>Refuses, before the lookup: Vespa's own rerank and keep-rank counts (this searcher sets them from the
 *       budgets), and caller conditions on anything but CALLER_FIELDS (a condition that singles news out would tell
 *       which news the user has read). On queries without user_id, those counts are cut to the funnel's bounds.</li>
 *   <li>Looks the user document up (sub-query on schema user, summary class user_profile).</li>
 *   <li>For profiles that rank by closeness (recall, recommendation, recommendation_with_global_category_ctr, live, learned)
 *       retrieves with nearestNeighbor(embedding, user_recall), AND-ed with the caller's query tree (e.g.
 *       category contains "sports"). Other profiles (personalized_search, bm25, popularity) keep the caller's
 *       query tree as the retrieval.</li>
 *   <li>The funnel's budgets, independent of hits and offset (so page 2 comes from page 1's candidates, and the
 *       candidates do not change with the number of content nodes): the graph search explores
 *       totalTargetHits = max(10 x recall_budget, recall_exploration, hits + offset) neighbours in total over
 *       the content nodes, the first phase ranks them, the second phase re-ranks the best recall_budget in total
 *       (ranking.secondPhase.totalRerankCount). recall_budget's default is in the default query profile;
 *       recall_exploration, unless a request sets it, is base(N) of the exploration law for the N news the index
 *       holds ({@link Exploration}, the embedded index's law; N counted at most once a minute).</li>
 *   <li>Sets query(user_recall) and query(user_ranking), excludes the user's read news (one NOT news_id in
 *       (...)), restricts to schema news, and picks profile recommendation unless the caller chose one.</li>
 *   <li>The re-ranker: a user fed with one has history_tokens, set as query(history_tokens) for profile unbert (the
 *       only one declaring it): the history's side of the cross-encoder (global phase; HTTP 400 for unbert and a user without them). rerank_budget N
 *       (1 to 1000) sets the hits the global phase re-ranks (ranking.globalPhase.rerankCount; default the profile's
 *       rerank-count).</li>
 * </ol>
 * Unknown user: HTTP 404, or popularity ranking with {@code user_fallback=popularity}, the result saying so in
 * its root field {@code fallback} ("popularity": {@code root.fields.fallback} in the JSON response) unless the
 * package sets user_fallback_marked to false (then a known and an unknown user get the same status and fields). A user is known only when
 * the looked-up document's user_id equals the requested one exactly ({@code u1} never gets {@code U1}'s profile).
 * The lookup is this searcher's own sub-query, run downstream of {@link NewsOnlySearcher}, which refuses the user
 * schema to every query from outside.
 */
@After({MinimalQueryInserter.EXTERNAL_YQL, NewsOnlySearcher.NEWS_ONLY})
public class UserProfileSearcher extends Searcher {

    public static final CompoundName USER_ID = CompoundName.from("user_id");
    public static final CompoundName FALLBACK = CompoundName.from("user_fallback");
    public static final CompoundName RECALL_BUDGET = CompoundName.from("recall_budget");
    /**
     * The name of a request header that holds the caller's verified user id (set by an authenticating proxy in
     * front of the container, which must strip it from what clients send); when the default query profile sets
     * it (not overridable), a query's user_id must equal it. Empty: user_id is taken as given.
     */
    public static final CompoundName IDENTITY_HEADER = CompoundName.from("user_identity_header");
    public static final CompoundName RECALL_EXPLORATION = CompoundName.from("recall_exploration");
    /**
     * Whether the popularity fallback is named in the result (FALLBACK_FIELD); set in the default query profile (not
     * overridable). false: known and unknown users get the same status and root fields.
     */
    public static final CompoundName FALLBACK_MARKED = CompoundName.from("user_fallback_marked");
    /** N, the hits the global phase (profile unbert: the cross-encoder) re-ranks; unset: the profile's rerank-count. */
    public static final CompoundName RERANK_BUDGET = CompoundName.from("rerank_budget");
    public static final int MAX_RERANK_BUDGET = 1_000;
    public static final int MAX_RECALL_BUDGET = 10_000;
    static final int DEFAULT_RECALL_BUDGET = 100;  // as the default query profile: used when a query has no profile
    /** base(N) near N = 70,000 news: explored when the corpus cannot be counted (the count query failed). */
    static final int DEFAULT_RECALL_EXPLORATION = 4_000;
    /** How long a count of the news is reused before it is taken again. */
    static final long CORPUS_COUNT_NANOS = 60_000_000_000L;
    public static final int MAX_RECALL_EXPLORATION = 1_000_000;
    /** Neighbours explored per candidate kept, for budgets where 10 x R exceeds recall_exploration. */
    static final int PER_HIT = 10;
    public static final Pattern VALID_USER_ID = Pattern.compile("[A-Za-z0-9_-]{1,64}");
    public static final String USER_SUMMARY = "user_profile";
    public static final String DEFAULT_PROFILE = "recommendation";
    public static final String FALLBACK_PROFILE = "popularity";
    /** The result's root field that says the popular news stand in for an unknown user (value: FALLBACK_PROFILE). */
    public static final String FALLBACK_FIELD = "fallback";
    /** Profiles using closeness(field, embedding), which needs a nearestNeighbor item. */
    public static final Set<String> NEAREST_NEIGHBOR_PROFILES =
            Set.of("recall", "recommendation", "recommendation_with_global_category_ctr", "unbert", "live", "learned", "learned_features");
    /** The cross-encoder's profile (schemas/news/unbert.profile, in packages built with a re-ranker). */
    public static final String RERANKER_PROFILE = "unbert";
    public static final String HISTORY_TOKENS = "history_tokens";
    /**
     * The fields a personalized query's own conditions may name: the filters, the day of publication (a day holds
     * many news) and the text (title, abstract, the default fieldset).
     */
    public static final List<String> CALLER_FIELDS = List.of("category", "subcategory", "date", "title", "abstract", "default");

    /** The last count of the news and when it was taken (System.nanoTime()). */
    private record Count(long news, long at) { }
    private final AtomicReference<Count> lastCount = new AtomicReference<>();

    /** historyTokens: the re-ranker's side of the user (null when the user was fed without a re-ranker). */
    record UserProfile(Tensor recall, Tensor ranking, List<String> readItems, Tensor historyTokens) { }

    @Override
    public Result search(Query query, Execution execution) {
        String userId = query.properties().getString(USER_ID);
        String vespaCount = vespaRerankCount(query);
        if (userId == null) {  // not a recommendation query: Vespa's own counts, if sent, within the funnel's bounds
            clampVespaRerankCounts(query);
            return execution.search(query);
        }
        hideTheProfile(query);
        ErrorMessage identity = identityMismatch(query, userId);
        if (identity != null) return error(query, identity);
        if (vespaCount != null)
            return error(query, ErrorMessage.createBadRequest(
                    vespaCount + " is set by this searcher on a personalized query: use recall_budget (1 to " +
                    MAX_RECALL_BUDGET + ") or rerank_budget (1 to " + MAX_RERANK_BUDGET + ")"));

        if ( ! VALID_USER_ID.matcher(userId).matches())
            return error(query, ErrorMessage.createBadRequest(
                    "Invalid user_id: expected 1 to 64 characters from [A-Za-z0-9_-]"));
        String fallback = query.properties().getString(FALLBACK, "error");
        if ( ! fallback.equals("error") && ! fallback.equals("popularity"))
            return error(query, ErrorMessage.createBadRequest("user_fallback must be 'error' or 'popularity'"));
        Integer budget = query.properties().getInteger(RECALL_BUDGET, DEFAULT_RECALL_BUDGET);
        Integer exploration = query.properties().getInteger(RECALL_EXPLORATION);  // null: follow the corpus size
        if (budget == null || budget < 1 || budget > MAX_RECALL_BUDGET)
            return error(query, ErrorMessage.createBadRequest("recall_budget must be an integer from 1 to " + MAX_RECALL_BUDGET));
        if (exploration != null && (exploration < 1 || exploration > MAX_RECALL_EXPLORATION))
            return error(query, ErrorMessage.createBadRequest("recall_exploration must be an integer from 1 to " + MAX_RECALL_EXPLORATION));
        Integer rerankBudget;
        try {
            rerankBudget = query.properties().getInteger(RERANK_BUDGET);
        } catch (NumberFormatException e) {  // as a request parameter typed in the query profile type, a non-number is refused earlier
            rerankBudget = -1;
        }
        if (rerankBudget != null && (rerankBudget < 1 || rerankBudget > MAX_RERANK_BUDGET))
            return error(query, ErrorMessage.createBadRequest("rerank_budget must be an integer from 1 to " + MAX_RERANK_BUDGET));

        String singling = singlingOut(query.getModel().getQueryTree().getRoot());
        if (singling != null)  // before the lookup: no answer depends on the user's history or existence
            return error(query, ErrorMessage.createBadRequest(
                    "A query with user_id takes conditions on " + String.join(", ", CALLER_FIELDS) +
                    " and the text only, not " + singling + ": a condition that singles news out would tell " +
                    "which of them the user has read"));

        Result lookup = lookUp(userId, query, execution);
        if (lookup.hits().getError() != null) return error(query, lookup.hits().getError());

        Item callerTree = query.getModel().getQueryTree().getRoot();
        String profile = query.getRanking().getProfile();
        UserProfile user = toProfile(exactMatch(lookup, userId));
        if (user == null) {
            if (fallback.equals("error"))
                return error(query, ErrorMessage.createNotFound("Unknown user_id '" + userId + "' (or no embeddings)"));
            if (profile.equals("default") || NEAREST_NEIGHBOR_PROFILES.contains(profile))
                query.getRanking().setProfile(FALLBACK_PROFILE);
            query.getModel().getQueryTree().setRoot(isEmpty(callerTree) ? new TrueItem() : callerTree);
            query.getModel().setRestrict("news");
            query.trace("Unknown user " + userId + ": popularity fallback", 2);
            Result popular = execution.search(query);
            if (query.properties().getBoolean(FALLBACK_MARKED, true))
                popular.hits().setField(FALLBACK_FIELD, FALLBACK_PROFILE);  // rendered as root.fields.fallback
            return popular;
        }

        if (profile.equals("default")) {
            profile = DEFAULT_PROFILE;
            query.getRanking().setProfile(profile);
        }
        if (profile.equals(RERANKER_PROFILE) && user.historyTokens() == null)
            return error(query, ErrorMessage.createBadRequest(
                    "user " + userId + " has no history_tokens: feed with a re-ranker (newsrec-feed --reranker)"));
        Item retrieval;
        if (NEAREST_NEIGHBOR_PROFILES.contains(profile)) {
            NearestNeighborItem nn = new NearestNeighborItem("embedding", "user_recall");
            int base = exploration != null ? exploration : baseExploration(corpusSize(query, execution));
            nn.setTotalTargetHits(explored(budget, base, query.getHits() + query.getOffset()));
            nn.setAllowApproximate(true);
            query.getRanking().getSecondPhase().setTotalRerankCount(budget);
            retrieval = and(nn, callerTree);
        } else if (isEmpty(callerTree)) {
            return error(query, ErrorMessage.createBadRequest(
                    "Rank profile '" + profile + "' needs a query (yql or query) besides user_id"));
        } else {
            retrieval = callerTree;
        }
        query.getModel().getQueryTree().setRoot(excludeRead(retrieval, user.readItems()));
        query.getRanking().getFeatures().put("query(user_recall)", user.recall());
        query.getRanking().getFeatures().put("query(user_ranking)", user.ranking());
        if (profile.equals(RERANKER_PROFILE))  // only unbert declares the input (a default package has no such profile)
            query.getRanking().getFeatures().put("query(history_tokens)", user.historyTokens());
        if (rerankBudget != null)
            query.getRanking().getGlobalPhase().setRerankCount(rerankBudget);
        query.getModel().setRestrict("news");
        query.trace("Personalised for user " + userId + " with profile " + profile, 2);
        return execution.search(query);
    }

    /**
     * The first condition of a personalized query's tree on anything but CALLER_FIELDS (by its field, or its kind
     * when it names none), or null. The read news are excluded below the caller's conditions, so a condition that
     * picks news out (news_id in (...), a publication second, a nearest neighbour of a news vector) would make the
     * hits say which of those news the user has read.
     */
    static String singlingOut(Item item) {
        if (item == null || item instanceof TrueItem || item instanceof NullItem) return null;
        if (item instanceof CompositeItem composite) {
            for (Item child : composite.items()) {
                String found = singlingOut(child);
                if (found != null) return found;
            }
            return null;
        }
        String field = item instanceof HasIndexItem indexed ? indexed.getIndexName()
                       : item instanceof InItem in ? in.getIndexName()
                       : item instanceof NearestNeighborItem nn ? nn.getIndexName() : null;
        if (field != null) return field.isEmpty() || CALLER_FIELDS.contains(field) ? null : "'" + field + "'";
        return item.getItemType().toString().toLowerCase();
    }

    /** 401 when the identity header the package names is missing, 403 when it names another user; else null. */
    static ErrorMessage identityMismatch(Query query, String userId) {
        String header = query.properties().getString(IDENTITY_HEADER, "");
        if (header.isEmpty()) return null;
        String verified = query.getHttpRequest() == null ? null : query.getHttpRequest().getHeader(header);
        if (verified == null || verified.isEmpty())
            return ErrorMessage.createUnauthorized("A query with user_id needs the verified identity in header " + header);
        if ( ! verified.equals(userId))
            return ErrorMessage.createForbidden("user_id is not the verified identity of this request");
        return null;
    }

    /** The first of Vespa's own rerank and keep-rank counts the request set, by its request parameter; null if none. */
    static String vespaRerankCount(Query query) {
        var ranking = query.getRanking();
        if (ranking.getSecondPhase().getRerankCount() != null) return "ranking.secondPhase.rerankCount";
        if (ranking.getSecondPhase().getTotalRerankCount() != null) return "ranking.secondPhase.totalRerankCount";
        if (ranking.getGlobalPhase().getRerankCount() != null) return "ranking.globalPhase.rerankCount";
        if (ranking.getKeepRankCount() != null) return "ranking.keepRankCount";
        if (ranking.getTotalKeepRankCount() != null) return "ranking.totalKeepRankCount";
        return null;
    }

    /**
     * A query without user_id (search, filters, popularity) may set Vespa's rerank counts: each is cut to the bound
     * of the budget it stands for (MAX_RECALL_BUDGET for the content nodes' counts, per node or in total;
     * MAX_RERANK_BUDGET for the global phase's), so no caller makes a content node reserve a heap of a million hits
     * or the container run a model a hundred thousand times.
     */
    static void clampVespaRerankCounts(Query query) {
        var ranking = query.getRanking();
        var second = ranking.getSecondPhase();
        if (second.getRerankCount() != null) second.setRerankCount(Math.min(second.getRerankCount(), MAX_RECALL_BUDGET));
        if (second.getTotalRerankCount() != null)
            second.setTotalRerankCount(Math.min(second.getTotalRerankCount(), MAX_RECALL_BUDGET));
        if (ranking.getKeepRankCount() != null) ranking.setKeepRankCount(Math.min(ranking.getKeepRankCount(), MAX_RECALL_BUDGET));
        if (ranking.getTotalKeepRankCount() != null)
            ranking.setTotalKeepRankCount(Math.min(ranking.getTotalKeepRankCount(), MAX_RECALL_BUDGET));
        var global = ranking.getGlobalPhase();
        if (global.getRerankCount() != null) global.setRerankCount(Math.min(global.getRerankCount(), MAX_RERANK_BUDGET));
    }

    /**
     * The neighbours the graph search explores and exposes to the first phase, in total over the content nodes:
     * max(10 x budget, exploration, hits + offset). MIPS-transformed vectors need a wide search for the best budget
     * ones to be among them, wider the larger the corpus (feed/exploration.py and bench/bench_ann.py in the
     * repository): `exploration` is that base for the deployment's corpus; hits + offset gives every page its hits.
     */
    static int explored(int budget, int exploration, int hitsAndOffset) {
        return Math.max(PER_HIT * budget, Math.max(exploration, hitsAndOffset));
    }

    /** base(N) of the exploration law; for a corpus that could not be counted (-1), the base near 70,000 news. */
    static int baseExploration(long news) {
        return news < 0 ? DEFAULT_RECALL_EXPLORATION : Exploration.base(news);
    }

    /**
     * N, the news in the index, for the exploration law: a count (hits 0, rank profile unranked) taken at most once
     * a minute per container and reused, so the exploration follows the corpus as news are fed. A count that fails
     * gives -1 (then the base for about 70,000 news is explored) and is not kept.
     */
    long corpusSize(Query query, Execution execution) {
        Count last = lastCount.get();
        long now = System.nanoTime();
        if (last != null && now - last.at() < CORPUS_COUNT_NANOS) return last.news();
        Query count = subQuery(query, "news", new TrueItem(), 0);
        Result result = execution.search(count);
        if (result.hits().getError() != null) return -1;
        lastCount.set(new Count(result.getTotalHitCount(), now));
        return result.getTotalHitCount();
    }

    /**
     * Nothing the lookup finds may leave through the response: the query tree holds the user's read news
     * (NOT news_id:...), the rank features the user's vectors. So no trace (whatever trace.level the request
     * asked for), no query dump, no explanation and no listed rank features for a query with user_id.
     */
    private static void hideTheProfile(Query query) {
        query.getTrace().setLevel(0);
        query.getTrace().setExplainLevel(0);
        query.getTrace().setQuery(false);
        query.getRanking().setListFeatures(false);
    }

    /**
     * Fetches the user document; the id is passed as a term value, so no query syntax applies to it.
     * user_id is matched cased (schemas/user.sd), so at most the user with exactly this id comes back.
     */
    static Result lookUp(String userId, Query query, Execution execution) {
        Query userQuery = subQuery(query, "user", new WordItem(userId, "user_id", true), 1);
        userQuery.getPresentation().setSummary(USER_SUMMARY);
        Result result = execution.search(userQuery);
        execution.fill(result, USER_SUMMARY);
        return result;
    }

    /**
     * A query of this container's own on `schema` with `root` (never the caller's text), unranked, for `hits` hits,
     * within the time `parent` has left and sharing its tracing.
     */
    static Query subQuery(Query parent, String schema, Item root, int hits) {
        Query query = new Query();
        query.attachContext(parent);
        query.setTimeout(Math.max(1, parent.getTimeLeft()));
        query.getModel().setRestrict(schema);
        query.getModel().getQueryTree().setRoot(root);
        query.getRanking().setProfile("unranked");
        query.setHits(hits);
        return query;
    }

    /**
     * The looked-up user whose user_id equals the requested one exactly (case included), or null.
     * schemas/user.sd matches user_id cased, so Vespa returns no other; this check keeps a profile from
     * being served for a different id should the field ever match case-insensitively again (u1 -> U1).
     */
    static Hit exactMatch(Result result, String userId) {
        for (Hit hit : result.hits().asList()) {
            Object id = hit.getField("user_id");  // a String from the backend (any CharSequence accepted)
            if ( ! hit.isMeta() && id != null && userId.equals(id.toString())) return hit;
        }
        return null;
    }

    /** Returns null for a missing user, and for one without embeddings (treated the same way). */
    private static UserProfile toProfile(Hit hit) {
        if (hit == null || hit.getField("recall_embedding") == null || hit.getField("ranking_embedding") == null)
            return null;
        return new UserProfile((Tensor) hit.getField("recall_embedding"),
                               (Tensor) hit.getField("ranking_embedding"),
                               strings(hit.getField("has_read_items")),
                               (Tensor) hit.getField(HISTORY_TOKENS));
    }

    /** array&lt;string&gt; summary fields arrive as Inspectable from the backend, as a List from test mocks. */
    static List<String> strings(Object field) {
        List<String> values = new ArrayList<>();
        if (field instanceof Inspectable inspectable) {
            Inspector array = inspectable.inspect();
            for (int i = 0; i < array.entryCount(); i++)
                values.add(array.entry(i).asString());
        } else if (field instanceof Iterable<?> iterable) {
            iterable.forEach(value -> values.add(value.toString()));
        }
        return values;
    }

    private static boolean isEmpty(Item item) {
        return item == null || item instanceof NullItem || item instanceof TrueItem;
    }

    private static Item and(Item nn, Item callerTree) {
        if (isEmpty(callerTree)) return nn;
        AndItem and = new AndItem();
        and.addItem(nn);
        and.addItem(callerTree);
        return and;
    }

    /** positive AND NOT news_id in (read items): one term, however long the history. */
    private static Item excludeRead(Item positive, List<String> readItems) {
        if (readItems.isEmpty()) return positive;
        NotItem not = new NotItem();
        not.addPositiveItem(positive);
        not.addNegativeItem(new StringInItem("news_id", new LinkedHashSet<>(readItems)));
        return not;
    }

    private static Result error(Query query, ErrorMessage message) {
        return new Result(query, message);
    }

}
