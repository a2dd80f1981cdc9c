rank-profile unbert inherits recommendation {
    # The funnel's last step: UNBERT (pipeline/models/unbert.py), a cross-encoder of the candidate's title and
    # the user's clicked titles, re-ranks the best N hits of the recommendation funnel in the container
    # (global phase, after the content nodes' second phase). Part of the package only when it is built with a
    # re-ranker (`newsrec app build --reranker DIR`: this file goes to schemas/news/, the exported model to
    # models/unbert.onnx).
    #
    # The cross-encoder's input is [CLS] title [SEP] history [SEP], zero-padded to 163 = 3 + 32 + 128 word
    # pieces: tokenInputIds builds it from the news document's title_tokens and the user's history_tokens
    # (UserProfileSearcher passes them as query(history_tokens)); the model computes the news segments from
    # the [NSEP] markers itself. feed/reranking.py builds the same inputs for the embedded index.
    # (Inside the block: Vespa's parser of .profile files accepts nothing, comments included, before rank-profile.)
    inputs {
        query(history_tokens) tensor<float>(d0[128])
    }
    function input_ids() {
        expression: tokenInputIds(163, attribute(title_tokens), query(history_tokens))
    }
    function attention_mask() {
        expression: tokenAttentionMask(163, attribute(title_tokens), query(history_tokens))
    }
    function token_type_ids() {
        expression: tokenTypeIds(163, attribute(title_tokens), query(history_tokens))
    }
    onnx-model unbert {
        file: models/unbert.onnx
        input input_ids: input_ids
        input attention_mask: attention_mask
        input token_type_ids: token_type_ids
        output score: score
    }
    function cross_encoder() {
        expression: sum(onnx(unbert).score)
    }
    # N, the hits re-ranked: 20 unless the query sets ranking.globalPhase.rerankCount (the searcher's
    # rerank_budget). The cross-encoder's score is fused with the two-tower's, not put in its place: each is
    # normalized over the N hits (normalize_linear: 0 for the lowest, 1 for the highest), then they are added
    # (feed/reranking.py fuse; replacing lowered the funnel with a weak re-ranker, BENCHMARKS.md "UNBERT").
    global-phase {
        expression: normalize_linear(recommendation_score) + normalize_linear(cross_encoder)
        rerank-count: 20
    }
    match-features {
        closeness(field, embedding)
        ranking_score
        recommendation_score
    }
}
