package ai.newsrec.vespa;

import com.yahoo.component.chain.dependencies.After;
import com.yahoo.component.chain.dependencies.Provides;
import com.yahoo.search.Query;
import com.yahoo.search.Result;
import com.yahoo.search.Searcher;
import com.yahoo.search.result.ErrorMessage;
import com.yahoo.search.searchchain.Execution;
import com.yahoo.search.yql.MinimalQueryInserter;

import java.util.Set;
import java.util.TreeSet;

/**
 * Keeps the user profiles private: every query from outside searches schema news, and only news.
 *
 * <p>Runs in the default chain after YQL parsing (which puts {@code select * from X} into the query's
 * sources) and before {@link UserProfileSearcher}, whose user lookup is a sub-query it sends down the rest
 * of the chain, past this searcher, which never sees it. A query naming any other schema or source, through the YQL
 * ({@code select * from user}, {@code from sources news, user}) or the {@code sources} / {@code restrict}
 * parameters (also {@code model.sources}, {@code model.restrict}), is refused with HTTP 400: refusing
 * tells the caller what happened, where silently narrowing it would answer a different question. A query
 * naming no schema ({@code select * from sources *}, or no YQL) would reach every schema in the content
 * cluster; it is narrowed to news, as that is the only thing it may see.</p>
 *
 * <p>This protects /search/ only when every request runs the default chain: the default query profile
 * pins {@code searchChain} (not overridable), so {@code searchChain=vespa} cannot bypass this searcher, and
 * a request naming another query profile fails (there is none).
 * document/v1 exposes every document and must be protected at the deployment (vespa-app/README.md).</p>
 */
@After(MinimalQueryInserter.EXTERNAL_YQL)
@Provides(NewsOnlySearcher.NEWS_ONLY)
public class NewsOnlySearcher extends Searcher {

    /** The phase this searcher provides; UserProfileSearcher runs after it. */
    public static final String NEWS_ONLY = "NewsOnly";
    public static final String PUBLIC_SCHEMA = "news";

    @Override
    public Result search(Query query, Execution execution) {
        Set<String> named = new TreeSet<>(query.getModel().getSources());
        named.addAll(query.getModel().getRestrict());
        named.remove(PUBLIC_SCHEMA);
        if ( ! named.isEmpty())
            return new Result(query, ErrorMessage.createBadRequest(
                    "Only schema '" + PUBLIC_SCHEMA + "' can be searched; not " + String.join(", ", named) +
                    " (user profiles are private: give user_id to get recommendations)"));
        query.getModel().setRestrict(PUBLIC_SCHEMA);
        return execution.search(query);
    }

}
