rank-profile learned inherits learned_features {
    # The live funnel, its second phase a learned ranker: gradient-boosted trees (LightGBM) trained by
    # `newsrec train-ranker` on the features the replay logged at each impression's time (rank profile
    # learned_features in news.sd, feed/replay.py), read here from models/ranker.json (LightGBM's dump_model;
    # Vespa converts its trees to a ranking expression and applies the sigmoid a binary objective names). The
    # model's feature names are learned_features' functions (feed/ranking.py LEARNED_FEATURES).
    # Part of the package only when it is built with a ranker (`newsrec app build --ranker DIR`: this file goes
    # to schemas/news/, DIR/lightgbm.json to models/ranker.json).
    function learned_score() {
        expression: lightgbm("ranker.json")
    }
    second-phase {
        expression: learned_score
        total-rerank-count: 100
    }
    match-features {
        closeness(field, embedding)
        ranking_score
        log_live_ctr
        log_age
        appeal
        recall_closeness
        log_impressions
        live_category_ctr
        category_match
        entity_match
        log_history_length
        live_score
        learned_score
    }
}
