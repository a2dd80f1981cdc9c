package ai.newsrec.vespa;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.yahoo.application.Application;
import com.yahoo.component.chain.Chain;
import com.yahoo.container.protect.Error;
import com.yahoo.prelude.query.AndItem;
import com.yahoo.prelude.query.Item;
import com.yahoo.prelude.query.NearestNeighborItem;
import com.yahoo.prelude.query.NotItem;
import com.yahoo.prelude.query.SerializationContext;
import com.yahoo.prelude.query.StringInItem;
import com.yahoo.prelude.query.TrueItem;
import com.yahoo.prelude.query.WordItem;
import com.yahoo.search.Query;
import com.yahoo.search.Result;
import com.yahoo.search.Searcher;
import com.yahoo.search.query.profile.QueryProfile;
import com.yahoo.search.query.profile.QueryProfileRegistry;
import com.yahoo.search.query.profile.compiled.CompiledQueryProfile;
import com.yahoo.search.rendering.JsonRenderer;
import com.yahoo.search.result.Hit;
import com.yahoo.search.searchchain.Execution;
import com.yahoo.tensor.Tensor;
import com.yahoo.tensor.TensorType;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static ai.newsrec.vespa.ApplicationPackageTest.encode;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Runs the application's own default chain (as configured by services.xml, up to and including
 * UserProfileSearcher) against a mock backend that knows one user and records the news query.
 */
class UserProfileSearcherTest {

    private static final TensorType VECTOR = TensorType.fromSpec("tensor<float>(x[65])");
    private static final Tensor RECALL = vector(0.5);
    private static final Tensor RANKING = vector(0.25);
    private static final Tensor HISTORY_TOKENS = historyTokens();

    /** The news every mock backend counts; the exploration law's base for it: 6,000 (feed/exploration.py). */
    private static final long NEWS = 100_000;
    private static final int EXPLORED = 6_000;

    private static Application app;
    private static List<Searcher> appSearchers;

    @BeforeAll
    static void load() {
        app = TestApp.load(TestApp.APP_DIR);
        Chain<Searcher> chain = app.getJDisc(TestApp.QUERY).search().getChains().getComponent("default");
        appSearchers = new ArrayList<>();
        for (Searcher searcher : chain.components()) {  // the app's searchers up to ours: YQL parsing included
            appSearchers.add(searcher);
            if (searcher instanceof UserProfileSearcher) break;
        }
    }

    @AfterAll
    static void close() { app.close(); }

    @Test
    void recommendationQueryIsBuiltFromTheUserProfile() {
        MockBackend backend = new MockBackend();
        Result result = search(backend, "/search/?user_id=U1&hits=5&offset=3");
        assertNull(result.hits().getError());
        Query news = backend.newsQuery();

        assertEquals("recommendation", news.getRanking().getProfile());
        assertEquals("[news]", news.getModel().getRestrict().toString());
        assertEquals(RECALL, news.getRanking().getFeatures().getTensor("query(user_recall)").get());
        assertEquals(RANKING, news.getRanking().getFeatures().getTensor("query(user_ranking)").get());

        NotItem not = assertInstanceOf(NotItem.class, news.getModel().getQueryTree().getRoot());
        NearestNeighborItem nn = assertInstanceOf(NearestNeighborItem.class, not.getPositiveItem());
        assertNearestNeighbor(nn, EXPLORED);  // max(10 x the recall budget 100, base(N) for the 100,000 news counted)
        assertEquals(100, news.getRanking().getSecondPhase().getTotalRerankCount());
        assertEquals(List.of("news_id:N1", "news_id:N2"), negatives(not));

        // the lookup: a term on user_id, schema user, the attribute-only summary class
        Query user = backend.queries.get(0);
        assertEquals("[user]", user.getModel().getRestrict().toString());
        assertEquals("user_id:U1", user.getModel().getQueryTree().getRoot().toString());
        assertEquals("user_profile", user.getPresentation().getSummary());
    }

    @Test
    void nothingOfTheProfileLeavesThroughTracesOrListedFeatures() throws Exception {
        MockBackend backend = new MockBackend();
        Result result = search(backend, "/search/?user_id=U1&trace.level=9&trace.explainLevel=2&trace.query=true" +
                                        "&ranking.listFeatures=true");
        assertNull(result.hits().getError());
        Query news = backend.newsQuery();
        assertEquals(0, news.getTrace().getLevel());
        assertEquals(0, news.getTrace().getExplainLevel());
        assertFalse(news.getTrace().getQuery());
        assertFalse(news.getRanking().getListFeatures());
        java.io.StringWriter rendered = new java.io.StringWriter();
        result.getQuery().getContext(true).render(rendered);
        assertFalse(rendered.toString().contains("N1") || rendered.toString().contains("N2"), rendered.toString());
        Result control = search(new MockBackend(), "/search/?yql=select%20*%20from%20news%20where%20true&trace.level=9");
        assertEquals(9, control.getQuery().getTrace().getLevel());  // queries without user_id keep their tracing
    }

    @Test
    void callerYqlFilterIsKept() {
        MockBackend backend = new MockBackend();
        search(backend, "/search/?user_id=U1&yql=" +
                        encode("select * from news where category contains \"sports\" and date > 20191101"));
        NotItem not = (NotItem) backend.newsQuery().getModel().getQueryTree().getRoot();
        AndItem and = assertInstanceOf(AndItem.class, not.getPositiveItem());
        assertNearestNeighbor(assertInstanceOf(NearestNeighborItem.class, and.getItem(0)), EXPLORED);
        assertEquals("(AND category:sports date:>20191101)", and.getItem(1).toString());
        assertEquals("[news]", backend.newsQuery().getModel().getRestrict().toString());
    }

    @Test
    void filterParameterIsKept() {
        MockBackend backend = new MockBackend();
        // (tokenized without the app's index facts here, so a one-word value is used)
        search(backend, "/search/?user_id=U1&filter=" + encode("+category:sports"));
        AndItem and = (AndItem) ((NotItem) backend.newsQuery().getModel().getQueryTree().getRoot()).getPositiveItem();
        assertEquals("|category:sports", and.getItem(1).toString());  // '|' marks a filter term
    }

    @Test
    void callerChosenProfileIsKept() {
        MockBackend backend = new MockBackend();
        search(backend, "/search/?user_id=U1&ranking=recommendation_with_global_category_ctr");
        Query news = backend.newsQuery();
        assertEquals("recommendation_with_global_category_ctr", news.getRanking().getProfile());
        assertInstanceOf(NearestNeighborItem.class, ((NotItem) news.getModel().getQueryTree().getRoot()).getPositiveItem());
    }

    @Test
    void personalizedSearchRetrievesByTextAndRanksWithTheUser() {
        MockBackend backend = new MockBackend();
        search(backend, "/search/?user_id=U1&ranking=personalized_search&yql=" +
                        encode("select * from news where userQuery()") + "&query=" + encode("nfl injury"));
        Query news = backend.newsQuery();
        NotItem not = (NotItem) news.getModel().getQueryTree().getRoot();
        assertFalse(not.getPositiveItem().toString().contains("NEAREST_NEIGHBOR"), not.toString());
        assertTrue(not.getPositiveItem().toString().contains("nfl"), not.toString());
        assertEquals(RANKING, news.getRanking().getFeatures().getTensor("query(user_ranking)").get());
    }

    @Test
    void personalizedSearchWithoutTextIsRejected() {
        MockBackend backend = new MockBackend();
        Result result = search(backend, "/search/?user_id=U1&ranking=personalized_search");
        assertEquals(Error.BAD_REQUEST.code, result.hits().getError().getCode());
        assertNull(backend.newsQuery());
    }

    @Test
    void maliciousOrMalformedUserIdsAreRejectedBeforeAnyLookup() {
        for (String id : List.of("", "U1\" or true or \"", "U1) or (true", "U1 U2", "U1'", "Ü1", "U1\n",
                                 "U1;drop", "x".repeat(65))) {
            MockBackend backend = new MockBackend();
            Result result = search(backend, "/search/?user_id=" + encode(id));
            assertEquals(Error.BAD_REQUEST.code, result.hits().getError().getCode(), id);
            assertTrue(result.hits().getError().getDetailedMessage().contains("Invalid user_id"), id);
            assertTrue(backend.queries.isEmpty(), id);
        }
        assertNull(search(new MockBackend(), "/search/?user_id=" + "x".repeat(64)).hits().getError());
    }

    @Test
    void unknownUserIsAnErrorByDefault() {
        MockBackend backend = new MockBackend();
        Result result = search(backend, "/search/?user_id=U404");
        assertEquals(Error.NOT_FOUND.code, result.hits().getError().getCode());
        assertTrue(result.hits().getError().getDetailedMessage().contains("U404"));
        assertNull(backend.newsQuery());
    }

    @Test
    void unknownUserFallsBackToPopularityOnRequest() {
        MockBackend backend = new MockBackend();
        search(backend, "/search/?user_id=U404&user_fallback=popularity");
        Query news = backend.newsQuery();
        assertEquals("popularity", news.getRanking().getProfile());
        assertInstanceOf(TrueItem.class, news.getModel().getQueryTree().getRoot());
        assertEquals("[news]", news.getModel().getRestrict().toString());

        MockBackend filtered = new MockBackend();
        search(filtered, "/search/?user_id=U404&user_fallback=popularity&yql=" +
                         encode("select * from news where category contains \"sports\""));
        assertEquals("category:sports", filtered.newsQuery().getModel().getQueryTree().getRoot().toString());
    }

    @Test
    void theFallbackIsNamedInTheResultAndItsJson() throws Exception {
        Result fallback = search(new MockBackend(), "/search/?user_id=U404&user_fallback=popularity");
        assertEquals("popularity", fallback.hits().getField("fallback"));
        JsonNode root = new ObjectMapper().readTree(rendered(fallback)).get("root");
        assertEquals("popularity", root.get("fields").get("fallback").asText(), root.toString());

        Result known = search(new MockBackend(), "/search/?user_id=U1&user_fallback=popularity");
        assertNull(known.hits().getField("fallback"));
        assertFalse(new ObjectMapper().readTree(rendered(known)).get("root").path("fields").has("fallback"));
    }

    @Test
    void anUnmarkedFallbackAnswersKnownAndUnknownUsersAlike() throws Exception {
        QueryProfileRegistry registry = new QueryProfileRegistry();
        QueryProfile unmarked = new QueryProfile("default");
        unmarked.set(UserProfileSearcher.FALLBACK_MARKED.toString(), "false", registry);
        unmarked.setOverridable(UserProfileSearcher.FALLBACK_MARKED.toString(), false, Map.of());
        registry.register(unmarked);
        CompiledQueryProfile compiled = registry.compile().getComponent("default");
        String asked = "&user_fallback=popularity&user_fallback_marked=true";  // the request cannot mark it again
        Result unknown = search(new MockBackend(), new Query("/search/?user_id=U404" + asked, compiled));
        Result known = search(new MockBackend(), new Query("/search/?user_id=U1" + asked, compiled));
        assertNull(unknown.hits().getError());
        assertNull(unknown.hits().getField("fallback"));
        JsonNode unknownRoot = new ObjectMapper().readTree(rendered(unknown)).get("root");
        JsonNode knownRoot = new ObjectMapper().readTree(rendered(known)).get("root");
        assertEquals(knownRoot.path("fields").toString(), unknownRoot.path("fields").toString());
    }

    /** The result as Vespa's JSON renderer writes the response body. */
    private static String rendered(Result result) throws Exception {
        JsonRenderer renderer = new JsonRenderer();
        renderer.init();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        renderer.renderResponse(out, result, new Execution(Execution.Context.createContextStub()), result.getQuery()).get();
        return out.toString(StandardCharsets.UTF_8);
    }

    @Test
    void invalidFallbackIsRejected() {
        assertEquals(Error.BAD_REQUEST.code, search(new MockBackend(), "/search/?user_id=U1&user_fallback=x").hits().getError().getCode());
    }

    @Test
    void queriesWithoutUserIdAreUntouched() {
        MockBackend backend = new MockBackend();
        search(backend, "/search/?yql=" + encode("select * from news where category contains \"sports\""));
        assertEquals(1, backend.queries.size());
        Query news = backend.queries.get(0);
        assertEquals("category:sports", news.getModel().getQueryTree().getRoot().toString());
        assertEquals("default", news.getRanking().getProfile());
        assertTrue(news.getRanking().getFeatures().getTensor("query(user_recall)").isEmpty());
        assertEquals("[news]", news.getModel().getRestrict().toString());  // set by NewsOnlySearcher
    }

    @Test
    void searchTextWithTheLinguisticsGrammarIsWordsNotQuerySyntax() {
        String text = "&query=" + encode("news_id:N1 -storm");
        MockBackend plain = new MockBackend();
        search(plain, "/search/?yql=" + encode("select * from news where userInput(@query)") + text);
        String parsed = plain.queries.get(0).getModel().getQueryTree().getRoot().toString();
        assertTrue(parsed.contains("news_id:N1") && parsed.contains("-default:storm"), parsed);  // field query, negation
        MockBackend words = new MockBackend();
        search(words, "/search/?yql=" + encode("select * from news where {grammar: \"linguistics\"}userInput(@query)") + text);
        String tree = words.queries.get(0).getModel().getQueryTree().getRoot().toString();
        assertFalse(tree.contains("news_id:") || tree.contains("-default:storm"), tree);
        assertTrue(tree.contains("storm") && tree.contains("n1"), tree);
    }

    // ---- the funnel: budgets independent of hits, offset and the number of content nodes

    @Test
    void recallBudgetDoesNotDependOnHitsOrOffset() {
        List<Query> sent = new ArrayList<>();
        for (String page : List.of("hits=10&offset=0", "hits=10&offset=10", "hits=20&offset=0", "hits=5&offset=35")) {
            MockBackend backend = new MockBackend();
            assertNull(search(backend, "/search/?user_id=U1&" + page).hits().getError(), page);
            sent.add(backend.newsQuery());
        }
        for (Query news : sent) {
            NearestNeighborItem nn = (NearestNeighborItem) ((NotItem) news.getModel().getQueryTree().getRoot()).getPositiveItem();
            assertEquals(EXPLORED, nn.getTotalTargetHits());
            assertEquals(100, news.getRanking().getSecondPhase().getTotalRerankCount());
        }
    }

    @Test
    void pageOnePlusPageTwoIsTheTopTwentyOfOneQuery() {
        RankingBackend backend = new RankingBackend(500);
        List<String> top20 = ids(search(backend, "/search/?user_id=U1&hits=20"));
        List<String> pages = new ArrayList<>(ids(search(backend, "/search/?user_id=U1&hits=10")));
        pages.addAll(ids(search(backend, "/search/?user_id=U1&hits=10&offset=10")));
        assertEquals(20, top20.size());
        assertEquals(top20, pages);
        // and the candidates are not the page: a narrow budget gives other (worse) hits than the default one
        List<String> narrow = ids(search(backend, "/search/?user_id=U1&hits=20&recall_budget=20&recall_exploration=1"));
        assertFalse(narrow.equals(top20), narrow.toString());
    }

    @Test
    void recallBudgetAndExplorationCanBeSetPerQueryWithinBounds() {
        MockBackend backend = new MockBackend();
        search(backend, "/search/?user_id=U1&recall_budget=500&recall_exploration=4");
        Query news = backend.newsQuery();
        assertEquals(5000, ((NearestNeighborItem) ((NotItem) news.getModel().getQueryTree().getRoot()).getPositiveItem()).getTotalTargetHits());
        assertEquals(500, news.getRanking().getSecondPhase().getTotalRerankCount());
        MockBackend deep = new MockBackend();
        search(deep, "/search/?user_id=U1&recall_budget=10&recall_exploration=1&hits=400&offset=1000");
        assertEquals(1400, ((NearestNeighborItem) ((NotItem) deep.newsQuery().getModel().getQueryTree().getRoot()).getPositiveItem()).getTotalTargetHits());
        for (String bad : List.of("recall_budget=0", "recall_budget=10001", "recall_exploration=0", "recall_exploration=1000001")) {
            MockBackend refused = new MockBackend();
            Result result = search(refused, "/search/?user_id=U1&" + bad);
            assertEquals(Error.BAD_REQUEST.code, result.hits().getError().getCode(), bad);
            assertNull(refused.newsQuery(), bad);
        }
    }

    @Test
    void explorationFollowsTheCountedCorpusUnlessTheRequestSetsIt() {
        int[][] cases = {{49_000, 2779}, {161_000, 7697}, {1_000_000, 20_000}};  // tests/fixtures/exploration.json
        for (int[] c : cases) {
            UserProfileSearcher searcher = new UserProfileSearcher();  // its own count
            MockBackend backend = new MockBackend().withNews(c[0]);
            assertEquals(c[1], explored(searcher, backend, "/search/?user_id=U1"), "news " + c[0]);
            MockBackend grown = new MockBackend().withNews(10L * c[0]);  // within a minute: the count is reused
            assertEquals(c[1], explored(searcher, grown, "/search/?user_id=U1"), "news " + c[0]);
            assertEquals(1, backend.counts() + grown.counts());
            MockBackend set = new MockBackend().withNews(c[0]);  // a request's recall_exploration wins
            assertEquals(1000, explored(searcher, set, "/search/?user_id=U1&recall_exploration=7"));
        }
        UserProfileSearcher searcher = new UserProfileSearcher();
        MockBackend failing = new MockBackend().failingCounts();  // a failed count: the base for about 70,000 news
        assertEquals(4000, explored(searcher, failing, "/search/?user_id=U1"));
        MockBackend after = new MockBackend().withNews(1_000_000);  // and it was not kept
        assertEquals(20_000, explored(searcher, after, "/search/?user_id=U1"));
    }

    /** totalTargetHits of the news query `searcher` (in the app's chain instead of the app's own) sends. */
    private static int explored(UserProfileSearcher searcher, MockBackend backend, String request) {
        List<Searcher> searchers = new ArrayList<>(appSearchers.subList(0, appSearchers.size() - 1));
        searchers.add(searcher);
        searchers.add(backend);
        Result result = new Execution(new Chain<>(searchers), Execution.Context.createContextStub()).search(new Query(request));
        assertNull(result.hits().getError());
        NotItem not = (NotItem) backend.newsQuery().getModel().getQueryTree().getRoot();
        return ((NearestNeighborItem) not.getPositiveItem()).getTotalTargetHits();
    }

    @Test
    void everyContentNodeGetsItsShareOfTheTotalTargetHits() throws Exception {
        MockBackend backend = new MockBackend();
        search(backend, "/search/?user_id=U1");
        NearestNeighborItem nn = (NearestNeighborItem) ((NotItem) backend.newsQuery().getModel().getQueryTree().getRoot()).getPositiveItem();
        java.lang.reflect.Method resolve = NearestNeighborItem.class.getDeclaredMethod("resolveTargetHits", SerializationContext.class);
        resolve.setAccessible(true);
        assertEquals(6000, resolve.invoke(nn, new SerializationContext(1.0)));    // one node: all of them
        assertEquals(3000, resolve.invoke(nn, new SerializationContext(0.5)));    // two nodes: half each, 6000 in total
        assertEquals(100, resolve.invoke(nn, new SerializationContext(0.01)));    // a nearly empty node: minTargetHits
    }

    private static List<String> ids(Result result) {
        assertNull(result.hits().getError());
        List<String> ids = new ArrayList<>();
        for (Hit hit : result.hits().asList()) ids.add(hit.getId().toString());
        return ids;
    }

    // ---- private users: NewsOnlySearcher before UserProfileSearcher, exact id match in the lookup

    @Test
    void userSchemaIsRefusedToQueriesFromOutside() {
        for (String request : List.of("/search/?yql=" + encode("select * from user where true"),
                                      "/search/?yql=" + encode("select * from sources news, user where true"),
                                      "/search/?yql=" + encode("select * from sources * where true") + "&restrict=user",
                                      "/search/?yql=" + encode("select * from news where true") + "&sources=user",
                                      "/search/?yql=" + encode("select * from news where true") + "&model.restrict=user",
                                      "/search/?user_id=U1&yql=" + encode("select * from user where true"))) {
            MockBackend backend = new MockBackend();
            Result result = search(backend, request);
            assertEquals(Error.BAD_REQUEST.code, result.hits().getError().getCode(), request);
            assertTrue(result.hits().getError().getDetailedMessage().contains("Only schema 'news' can be searched; not user"),
                       result.hits().getError().getDetailedMessage());
            assertTrue(backend.queries.isEmpty(), request);  // nothing reached the content cluster
            assertEquals(0, userHits(result), request);
        }
    }

    @Test
    void otherSchemasAndSourcesAreRefusedToo() {
        Result result = search(new MockBackend(), "/search/?yql=" + encode("select * from category_ctr where true"));
        assertEquals(Error.BAD_REQUEST.code, result.hits().getError().getCode());
        assertTrue(result.hits().getError().getDetailedMessage().contains("not category_ctr"));
        Result cluster = search(new MockBackend(), "/search/?yql=" + encode("select * from news where true") + "&sources=mind");
        assertEquals(Error.BAD_REQUEST.code, cluster.hits().getError().getCode());
    }

    @Test
    void queriesNamingNoSchemaAreNarrowedToNews() {
        for (String request : List.of("/search/?yql=" + encode("select * from sources * where true"),
                                      "/search/?query=U1",
                                      // YQL `sources *` clears the sources parameter (Vespa's MinimalQueryInserter)
                                      "/search/?yql=" + encode("select * from sources * where true") + "&sources=user",
                                      "/search/?yql=" + encode("select * from news where true") + "&sources=news")) {
            MockBackend backend = new MockBackend();
            Result result = search(backend, request);
            assertNull(result.hits().getError(), request);
            assertEquals(1, backend.queries.size(), request);
            assertEquals("[news]", backend.queries.get(0).getModel().getRestrict().toString(), request);
            assertEquals(0, userHits(result), request);
        }
        // the mock does serve users to a query restricted to none: what the narrowing prevents
        Query everything = new Query();
        everything.getModel().getQueryTree().setRoot(new TrueItem());
        assertEquals(2, userHits(new Execution(new MockBackend(), Execution.Context.createContextStub()).search(everything)));
    }

    @Test
    void userIdDifferingOnlyInCaseIsAnUnknownUser() {
        MockBackend backend = new MockBackend();
        Result result = search(backend, "/search/?user_id=u1");
        assertEquals(Error.NOT_FOUND.code, result.hits().getError().getCode());
        assertTrue(result.hits().getError().getDetailedMessage().contains("Unknown user_id 'u1'"));
        assertEquals("user_id:u1", backend.queries.get(0).getModel().getQueryTree().getRoot().toString());
        assertEquals(1, backend.queries.size());  // the lookup only: U1's profile was found, and not used
        assertNull(backend.newsQuery());

        MockBackend fallback = new MockBackend();
        search(fallback, "/search/?user_id=u1&user_fallback=popularity");
        assertEquals("popularity", fallback.newsQuery().getRanking().getProfile());
        assertTrue(fallback.newsQuery().getRanking().getFeatures().getTensor("query(user_recall)").isEmpty());
    }

    @Test
    void exactMatchPicksTheHitWithTheRequestedId() {
        Result lookup = new Result(new Query());
        for (String id : List.of("u1", "U1")) {
            Hit hit = new Hit("id:news:user::" + id, 1.0);
            hit.setField("user_id", id);
            lookup.hits().add(hit);
        }
        assertEquals("id:news:user::U1", UserProfileSearcher.exactMatch(lookup, "U1").getId().toString());
        assertNull(UserProfileSearcher.exactMatch(lookup, "u2"));
        Hit withoutId = new Hit("id:news:user::U3", 1.0);
        lookup.hits().add(withoutId);
        assertNull(UserProfileSearcher.exactMatch(lookup, "U3"));
    }

    // ---- the re-ranker: query(history_tokens) from the user, profile unbert, rerank_budget

    @Test
    void historyTokensOfTheUserBecomeAQueryFeature() {
        MockBackend backend = new MockBackend().withHistoryTokens();
        assertNull(search(backend, "/search/?user_id=U1&ranking=unbert").hits().getError());
        Query news = backend.newsQuery();
        assertEquals("unbert", news.getRanking().getProfile());
        assertEquals(HISTORY_TOKENS, news.getRanking().getFeatures().getTensor("query(history_tokens)").get());
        assertEquals(RANKING, news.getRanking().getFeatures().getTensor("query(user_ranking)").get());
        NotItem not = assertInstanceOf(NotItem.class, news.getModel().getQueryTree().getRoot());
        assertNearestNeighbor(assertInstanceOf(NearestNeighborItem.class, not.getPositiveItem()), EXPLORED);  // unbert inherits recommendation
        assertEquals(100, news.getRanking().getSecondPhase().getTotalRerankCount());
        assertNull(news.getRanking().getGlobalPhase().getRerankCount());  // the profile's rerank-count

        MockBackend other = new MockBackend().withHistoryTokens();  // only profile unbert declares the input
        search(other, "/search/?user_id=U1");
        assertTrue(other.newsQuery().getRanking().getFeatures().getTensor("query(history_tokens)").isEmpty());
    }

    @Test
    void usersFedWithoutAReRankerGetNoHistoryTokens() {
        MockBackend backend = new MockBackend();
        assertNull(search(backend, "/search/?user_id=U1").hits().getError());
        assertTrue(backend.newsQuery().getRanking().getFeatures().getTensor("query(history_tokens)").isEmpty());
    }

    @Test
    void unbertForAUserWithoutHistoryTokensIsABadRequest() {
        MockBackend backend = new MockBackend();
        Result result = search(backend, "/search/?user_id=U1&ranking=unbert");
        assertEquals(Error.BAD_REQUEST.code, result.hits().getError().getCode());
        assertEquals("user U1 has no history_tokens: feed with a re-ranker (newsrec-feed --reranker)",
                     result.hits().getError().getDetailedMessage());
        assertNull(backend.newsQuery());
    }

    @Test
    void rerankBudgetSetsTheGlobalPhasesRerankCount() {
        for (int budget : new int[] {1, 50, 1000}) {
            MockBackend backend = new MockBackend().withHistoryTokens();
            assertNull(search(backend, "/search/?user_id=U1&ranking=unbert&rerank_budget=" + budget).hits().getError());
            assertEquals(budget, backend.newsQuery().getRanking().getGlobalPhase().getRerankCount());
            assertEquals(100, backend.newsQuery().getRanking().getSecondPhase().getTotalRerankCount());  // recall_budget's
        }
    }

    @Test
    void invalidRerankBudgetIsRejectedBeforeAnyLookup() {
        for (String bad : List.of("0", "-1", "1001", "abc", "2.5")) {
            MockBackend backend = new MockBackend().withHistoryTokens();
            Result result = search(backend, "/search/?user_id=U1&ranking=unbert&rerank_budget=" + bad);
            assertEquals(Error.BAD_REQUEST.code, result.hits().getError().getCode(), bad);
            assertTrue(result.hits().getError().getDetailedMessage().contains("rerank_budget must be an integer from 1 to 1000"),
                       result.hits().getError().getDetailedMessage());
            assertTrue(backend.queries.isEmpty(), bad);
        }
    }

    private static long userHits(Result result) {
        return result.hits().asList().stream().filter(h -> h.getId() != null && h.getId().toString().startsWith("id:news:user::")).count();
    }

    // ---- no history oracle

    @Test
    void conditionsThatSingleNewsOutAreRefusedBeforeTheLookup() {
        // news_id in (400 ids), as the application's YQL parser makes it (this test's parser lacks the index facts)
        StringInItem ids = new StringInItem("news_id");
        for (int i = 0; i < 400; i++) ids.addToken("N" + i);
        MockBackend oracle = new MockBackend();
        Query in = new Query("/search/?user_id=U1&user_fallback=popularity");
        in.getModel().getQueryTree().setRoot(ids);
        List<Searcher> searchers = new ArrayList<>(appSearchers);
        searchers.add(oracle);
        Result refused = new Execution(new Chain<>(searchers), Execution.Context.createContextStub()).search(in);
        assertEquals(Error.BAD_REQUEST.code, refused.hits().getError().getCode());
        assertTrue(refused.hits().getError().getDetailedMessage().contains("not 'news_id'"),
                   refused.hits().getError().getDetailedMessage());
        assertTrue(oracle.queries.isEmpty(), "news_id in (...): no lookup, no search");
        for (String where : List.of("news_id contains 'N1'", "true and (category contains 'sports' or news_id contains 'N2')",
                                    "published = 1573042000", "clicks = 7", "url contains 'x'",
                                    "{targetHits: 10}nearestNeighbor(embedding, user_recall)")) {
            MockBackend backend = new MockBackend();
            Result result = search(backend, "/search/?user_id=U1&user_fallback=popularity&yql=" +
                                            encode("select * from news where " + where));
            String label = where.substring(0, Math.min(60, where.length()));
            assertEquals(Error.BAD_REQUEST.code, result.hits().getError().getCode(),
                         label + ": " + result.hits().getError().getDetailedMessage());
            assertTrue(result.hits().getError().getDetailedMessage().startsWith("A query with user_id takes conditions on"),
                       result.hits().getError().getDetailedMessage());
            assertTrue(backend.queries.isEmpty(), label + ": no lookup, no search");
        }
        for (String where : List.of("category contains 'sports'", "subcategory contains 'golf' and title contains 'open'",
                                    "abstract contains 'cup'", "default contains 'cup'", "date > 20191101")) {
            MockBackend backend = new MockBackend();
            Result result = search(backend, "/search/?user_id=U1&yql=" + encode("select * from news where " + where));
            assertNull(result.hits().getError(), where);
        }
    }

    // ---- budgets no caller can inflate

    @Test
    void vespasOwnRerankCountsAreRefusedOnPersonalizedQueries() {
        for (String parameter : List.of("ranking.secondPhase.rerankCount", "ranking.secondPhase.totalRerankCount",
                                        "ranking.globalPhase.rerankCount", "ranking.rerankCount", "ranking.keepRankCount",
                                        "ranking.totalKeepRankCount")) {
            MockBackend backend = new MockBackend();
            Result result = search(backend, "/search/?user_id=U1&ranking=unbert&" + parameter + "=1000000");
            assertEquals(Error.BAD_REQUEST.code, result.hits().getError().getCode(), parameter);
            String expected = parameter.equals("ranking.rerankCount") ? "ranking.secondPhase.rerankCount" : parameter;
            assertTrue(result.hits().getError().getDetailedMessage().startsWith(expected + " is set by this searcher"),
                       result.hits().getError().getDetailedMessage());
            assertTrue(backend.queries.isEmpty(), parameter + ": nothing reached the backend");
        }
    }

    @Test
    void vespasOwnRerankCountsAreCutToTheBudgetsBoundsOnOtherQueries() {
        MockBackend backend = new MockBackend();
        search(backend, "/search/?yql=" + encode("select * from news where true") +
                        "&ranking.secondPhase.rerankCount=1000000&ranking.secondPhase.totalRerankCount=2000000" +
                        "&ranking.globalPhase.rerankCount=100000&ranking.keepRankCount=3000000");
        var ranking = backend.queries.get(backend.queries.size() - 1).getRanking();
        assertEquals(UserProfileSearcher.MAX_RECALL_BUDGET, ranking.getSecondPhase().getRerankCount());
        assertEquals(UserProfileSearcher.MAX_RECALL_BUDGET, ranking.getSecondPhase().getTotalRerankCount());
        assertEquals(UserProfileSearcher.MAX_RECALL_BUDGET, ranking.getKeepRankCount());
        assertEquals(UserProfileSearcher.MAX_RERANK_BUDGET, ranking.getGlobalPhase().getRerankCount());
        MockBackend small = new MockBackend();
        search(small, "/search/?yql=" + encode("select * from news where true") + "&ranking.globalPhase.rerankCount=7");
        assertEquals(7, small.queries.get(small.queries.size() - 1).getRanking().getGlobalPhase().getRerankCount());
    }

    private static void assertNearestNeighbor(NearestNeighborItem nn, int totalTargetHits) {
        assertEquals("embedding", nn.getIndexName());
        assertEquals("user_recall", nn.getQueryTensorName());
        assertEquals(totalTargetHits, nn.getTotalTargetHits());
        assertNull(nn.getTargetHits());  // per node: resolved from the total by each node's share
        assertTrue(nn.getAllowApproximate());
    }

    /** The read news excluded: one `news_id in (...)` term under the NOT, whatever the history's length. */
    private static List<String> negatives(NotItem not) {
        assertEquals(2, not.getItemCount());
        StringInItem in = assertInstanceOf(StringInItem.class, not.getItem(1));
        List<String> terms = new ArrayList<>();
        for (String token : in.getTokens())
            terms.add(in.getIndexName() + ":" + token);
        terms.sort(null);  // a set: no order
        return terms;
    }

    private static Result search(MockBackend backend, String request) {
        return search(backend, new Query(request));
    }

    private static Result search(MockBackend backend, Query query) {
        List<Searcher> searchers = new ArrayList<>(appSearchers);
        searchers.add(backend);
        return new Execution(new Chain<>(searchers), Execution.Context.createContextStub()).search(query);
    }

    /** Like a user's history pieces: [NSEP] pieces [NSEP] pieces ..., zero-padded to 128. */
    private static Tensor historyTokens() {
        Tensor.Builder builder = Tensor.Builder.of(TensorType.fromSpec("tensor<float>(d0[128])"));
        for (int i = 0; i < 128; i++) builder.cell(i >= 40 ? 0 : i % 10 == 0 ? 1 : 1000 + i, i);
        return builder.build();
    }

    private static Tensor vector(double value) {
        Tensor.Builder builder = Tensor.Builder.of(VECTOR);
        for (int i = 0; i < 64; i++) builder.cell(value, i);
        builder.cell(0.0, 64);  // MIPS coordinate: 0 for users
        return builder.build();
    }

    /**
     * A content cluster holding users U1 (has read N1, N2) and "x" * 64, and no news. Like Vespa, it searches
     * every schema when the query restricts to none. It matches user_id case-insensitively, as the uncased
     * attribute of the old user schema did, so the searcher's own exact id check is what is tested.
     * Records every query.
     */
    static class MockBackend extends Searcher {

        final List<Query> queries = new ArrayList<>();
        private Tensor historyTokens = null;  // users fed without a re-ranker have none
        /** The news a count finds (every backend of the shared app searcher says the same: it keeps a count). */
        private long news = NEWS;
        private boolean countFails = false;

        MockBackend withNews(long news) {
            this.news = news;
            return this;
        }

        MockBackend failingCounts() {
            countFails = true;
            return this;
        }

        /** The searcher's count of the news: hits 0, rank profile unranked, schema news, no condition. */
        static boolean isCount(Query query) {
            return query.getHits() == 0 && query.getRanking().getProfile().equals("unranked")
                   && query.getModel().getRestrict().contains("news")
                   && query.getModel().getQueryTree().getRoot() instanceof TrueItem;
        }

        long counts() { return queries.stream().filter(MockBackend::isCount).count(); }

        /** Users fed with a re-ranker: they have history_tokens. */
        MockBackend withHistoryTokens() {
            historyTokens = HISTORY_TOKENS;
            return this;
        }
        final Map<String, List<String>> users = Map.of("U1", List.of("N1", "N2"),
                                                       "x".repeat(64), List.of());

        @Override
        public Result search(Query query, Execution execution) {
            queries.add(query);
            if (isCount(query)) {
                if (countFails) return new Result(query, com.yahoo.search.result.ErrorMessage.createTimeout("count timed out"));
                Result count = new Result(query);
                count.setTotalHitCount(news);
                return count;
            }
            Result result = new Result(query);
            Set<String> restrict = query.getModel().getRestrict();
            if ( ! restrict.isEmpty() && ! restrict.contains("user")) return result;
            for (String userId : users.keySet())
                if (matches(query.getModel().getQueryTree().getRoot(), userId)) result.hits().add(userHit(userId));
            result.setTotalHitCount(result.hits().size());
            return result;
        }

        private static boolean matches(Item root, String userId) {
            if (root instanceof WordItem word)
                return word.getIndexName().equals("user_id") && word.getWord().equalsIgnoreCase(userId);
            return root instanceof TrueItem;
        }

        private Hit userHit(String userId) {
            Hit hit = new Hit("id:news:user::" + userId, 1.0);
            hit.setField("user_id", userId);
            hit.setField("recall_embedding", RECALL);
            hit.setField("ranking_embedding", RANKING);
            hit.setField("has_read_items", users.get(userId));
            if (historyTokens != null) hit.setField("history_tokens", historyTokens);
            return hit;
        }

        @Override
        public void fill(Result result, String summaryClass, Execution execution) { }

        /** The query sent to schema news, or null if none was sent. */
        Query newsQuery() {
            return queries.stream().filter(q -> q.getModel().getRestrict().contains("news") && ! isCount(q))
                          .findFirst().orElse(null);
        }
    }


    /**
     * Ranks like a single Vespa content node and container with the recommendation profile, over `size` news whose
     * closeness to the user and ranking score are fixed functions of their number (two different orders): the
     * per-node targetHits resolved from the query's totalTargetHits nearest by closeness are the first phase's
     * hits; the second phase re-ranks the best totalRerankCount of them by ranking score; then offset and hits.
     */
    static class RankingBackend extends MockBackend {

        private final int size;

        RankingBackend(int size) { this.size = size; }

        @Override
        public Result search(Query query, Execution execution) {
            if ( ! query.getModel().getRestrict().contains("news") || isCount(query)) return super.search(query, execution);
            NearestNeighborItem nn = (NearestNeighborItem) ((NotItem) query.getModel().getQueryTree().getRoot()).getPositiveItem();
            int targetHits = nn.getTotalTargetHits();  // one node
            int rerank = query.getRanking().getSecondPhase().getTotalRerankCount();
            List<Integer> firstPhase = new ArrayList<>();
            for (int i = 0; i < size; i++) firstPhase.add(i);
            firstPhase.sort((a, b) -> Double.compare(closeness(b), closeness(a)));
            List<Integer> candidates = new ArrayList<>(firstPhase.subList(0, Math.min(targetHits, size)));
            List<Integer> reranked = new ArrayList<>(candidates.subList(0, Math.min(rerank, candidates.size())));
            reranked.sort((a, b) -> Double.compare(rankingScore(b), rankingScore(a)));
            List<Integer> order = new ArrayList<>(reranked);
            order.addAll(candidates.subList(reranked.size(), candidates.size()));
            Result result = new Result(query);
            for (int i = query.getOffset(); i < Math.min(order.size(), query.getOffset() + query.getHits()); i++)
                result.hits().add(new Hit("id:news:news::N" + order.get(i), 1.0 / (1 + i)));
            return result;
        }

        private static double closeness(int n) { return 1.0 / (1 + n); }  // nearest first: N0, N1, ...
        private static double rankingScore(int n) { return Math.sin(n * 7.0); }  // a different order
    }

}
