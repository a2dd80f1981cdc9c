package ai.newsrec.vespa;

import com.yahoo.component.chain.dependencies.After;
import com.yahoo.processing.request.CompoundName;
import com.yahoo.search.Query;
import com.yahoo.search.Result;
import com.yahoo.search.Searcher;
import com.yahoo.search.result.ErrorMessage;
import com.yahoo.search.searchchain.Execution;

/**
 * One model version for the package, the fed news and the learned ranker. Rank profile {@code learned} ranks by
 * trees trained on features computed from one two-tower model's vectors (the header of the ranker names it:
 * newsrec's pipeline/learned_ranker.py); a query whose vectors, or whose fed news, come from another model would be
 * ranked by trees that never saw such features. So a query of that profile must say which model its side comes from
 * ({@code model_version}, what newsrec's feed recorded), and it is refused by name (HTTP 400) unless that is the
 * version the package's ranker was trained on ({@code ranker_model_version} in the default query profile, written
 * by the package build with the ranker; not overridable). Other profiles pass untouched.
 */
@After(NewsOnlySearcher.NEWS_ONLY)
public class RankerVersionSearcher extends Searcher {

    public static final String LEARNED_PROFILE = "learned";
    public static final CompoundName MODEL_VERSION = CompoundName.from("model_version");
    public static final CompoundName RANKER_MODEL_VERSION = CompoundName.from("ranker_model_version");

    @Override
    public Result search(Query query, Execution execution) {
        if ( ! LEARNED_PROFILE.equals(query.getRanking().getProfile())) return execution.search(query);
        String packaged = query.properties().getString(RANKER_MODEL_VERSION);
        String asked = query.properties().getString(MODEL_VERSION);
        if (packaged == null || packaged.isEmpty())
            return refuse(query, "rank profile learned: this package has no ranker version (build it with " +
                                 "`newsrec app build --ranker DIR`)");
        if (asked == null || asked.isEmpty())
            return refuse(query, "rank profile learned: the query must give model_version, the two-tower model " +
                                 "its vectors and the fed news come from (the package's ranker was trained on model " +
                                 packaged + ")");
        if ( ! asked.equals(packaged))
            return refuse(query, "rank profile learned: the package's ranker was trained on the features of model " +
                                 packaged + ", the query's come from model " + asked + ": deploy a ranker trained on " +
                                 "this model, or feed the ranker's model");
        return execution.search(query);
    }

    private static Result refuse(Query query, String message) {
        return new Result(query, ErrorMessage.createBadRequest(message));
    }
}
