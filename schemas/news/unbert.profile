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
    # N, the hits re-ranked: 20 unless the query sets ranking.globalPhase.rerankCount (the searcher's
    # rerank_budget). The two-tower score stays a match feature (recommendation_score).
    global-phase {
        expression: sum(onnx(unbert).score)
        rerank-count: 20
    }
    match-features {
        closeness(field, embedding)
        ranking_score
        recommendation_score
    }
}
