from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from newsrec.pipeline.errors import MindFormatError
from newsrec.pipeline.mind import read_mind
from support import DEV, NEWS, TRAIN, write_tsv


def test_reads_news_behaviors_and_entities(mind_dir: Path):
    dataset = read_mind(mind_dir)
    assert dataset.news.ids == ["N1", "N2", "N3", "N4"]
    assert dataset.news.title_entities[0][0]["WikidataId"] == "Q90000001"
    assert dataset.news.abstract[1] == "" and dataset.news.abstract_entities[1] == []
    train = dataset.splits["train"]
    assert train.impression_ids.tolist() == [1, 2]
    assert [dataset.users[u] for u in train.user_index] == ["U1", "U2"]
    assert train.history_of(0).tolist() == [0, 2] and train.history_of(1).tolist() == []
    assert train.candidates_of(1).tolist() == [0, 1, 2] and train.labels_of(1).tolist() == [1, 0, 0]
    assert train.time[0] == 1573290358  # 2019-11-09 09:05:58
    assert train.time[1] - train.time[0] == 24 * 3600 + 6 * 3600 + 6 * 60 + 3
    assert dataset.splits["dev"].labelled and "test" not in dataset.splits


def test_unlabelled_test_split(mind_dir: Path):
    write_tsv(mind_dir / "test" / "news.tsv", NEWS)
    write_tsv(mind_dir / "test" / "behaviors.tsv", [["7", "U9", "11/16/2019 1:00:00 AM", "N1", "N2 N3"]])
    test = read_mind(mind_dir).splits["test"]
    assert not test.labelled and test.labels.tolist() == [-1, -1]
    assert test.candidates.tolist() == [1, 2]


def _bad(mind_dir: Path, split: str, name: str, rows=None, content: bytes | None = None) -> str:
    path = mind_dir / split / name
    if content is not None:
        path.write_bytes(content)
    else:
        write_tsv(path, rows)
    with pytest.raises(MindFormatError) as caught:
        read_mind(mind_dir)
    return str(caught.value)


def test_wrong_column_count(mind_dir: Path):
    rows = [row[:] for row in TRAIN]
    rows[1] = rows[1][:4]
    message = _bad(mind_dir, "train", "behaviors.tsv", rows)
    assert message == (f"{mind_dir / 'train' / 'behaviors.tsv'}:2: expected 5 tab-separated columns "
                       "(ImpressionID, UserID, Time, History, Impressions), found 4")


def test_news_wrong_column_count(mind_dir: Path):
    rows = [row[:] for row in NEWS]
    rows[2] = rows[2] + ["extra"]
    message = _bad(mind_dir, "dev", "news.tsv", rows)
    assert message.startswith(f"{mind_dir / 'dev' / 'news.tsv'}:3: expected 8 tab-separated columns")
    assert message.endswith("found 9")


def test_bad_entity_json(mind_dir: Path):
    rows = [row[:] for row in NEWS]
    rows[3][6] = '[{"Label": "x", '
    message = _bad(mind_dir, "train", "news.tsv", rows)
    assert message.startswith(f"{mind_dir / 'train' / 'news.tsv'}:4: news N4: bad TitleEntities JSON (")


def test_entity_json_of_the_wrong_shape(mind_dir: Path):
    rows = [row[:] for row in NEWS]
    rows[0][7] = '{"Label": "x"}'
    message = _bad(mind_dir, "train", "news.tsv", rows)
    assert message == (f"{mind_dir / 'train' / 'news.tsv'}:1: news N1: AbstractEntities must be a JSON list "
                       "of objects with a WikidataId")


def test_candidate_without_label_in_labelled_split(mind_dir: Path):
    rows = [row[:] for row in DEV]
    rows[0][4] = "N2-1 N4"
    message = _bad(mind_dir, "dev", "behaviors.tsv", rows)
    assert message == (f"{mind_dir / 'dev' / 'behaviors.tsv'}:1: impression 1: candidate 'N4' has no -0/-1 "
                       "label (required in a labelled split)")


def test_label_other_than_zero_or_one(mind_dir: Path):
    rows = [row[:] for row in TRAIN]
    rows[0][4] = "N2-0 N4-2"
    assert "candidate 'N4-2' has no -0/-1 label" in _bad(mind_dir, "train", "behaviors.tsv", rows)


def test_a_candidate_labelled_both_clicked_and_not_is_refused(mind_dir: Path):
    rows = [row[:] for row in DEV]
    rows[0][4] = "N2-1 N4-0 N2-0"
    message = _bad(mind_dir, "dev", "behaviors.tsv", rows)
    assert message == f"{mind_dir / 'dev' / 'behaviors.tsv'}:1: impression 1: candidate N2 is labelled both -0 and -1"


def test_history_id_missing_from_every_news_file(mind_dir: Path):
    rows = [row[:] for row in TRAIN]
    rows[1][3] = "N1 N999"
    message = _bad(mind_dir, "train", "behaviors.tsv", rows)
    assert message == (f"{mind_dir / 'train' / 'behaviors.tsv'}:2: impression 2: History news id N999 "
                       "is not in any news.tsv (--drop-unknown-ids leaves such ids out, counted)")


def test_candidate_id_missing_from_every_news_file(mind_dir: Path):
    rows = [row[:] for row in DEV]
    rows[0][4] = "N2-1 N77-0"
    assert _bad(mind_dir, "dev", "behaviors.tsv", rows).endswith(
        ":1: impression 1: Impressions news id N77 is not in any news.tsv (--drop-unknown-ids leaves such ids out, "
        "counted)")


def test_news_defined_only_in_another_split_is_found(mind_dir: Path):
    write_tsv(mind_dir / "dev" / "news.tsv", NEWS[:2])  # N3, N4 only in train's news.tsv
    assert read_mind(mind_dir).splits["dev"].history_of(0).tolist() == [0, 2, 3]


@pytest.mark.parametrize("text, reason", [
    ("2019-11-09 09:05:58", "expected MM/DD/YYYY HH:MM:SS AM/PM"),
    ("11/9/2019 9:05:58", "expected MM/DD/YYYY HH:MM:SS AM/PM"),
    ("2/30/2019 9:05:58 AM", "no such date or time"),
    ("11/9/2019 13:05:58 PM", "no such date or time"),
])
def test_bad_timestamps(mind_dir: Path, text: str, reason: str):
    rows = [row[:] for row in TRAIN]
    rows[1][2] = text
    message = _bad(mind_dir, "train", "behaviors.tsv", rows)
    assert message == f"{mind_dir / 'train' / 'behaviors.tsv'}:2: bad Time {text!r}: {reason}"


def test_non_utf8_bytes(mind_dir: Path):
    content = ("\t".join(NEWS[0]) + "\n").encode() + b"N2\tfinance\tmarkets\tSt\xe9cks\t\tu\t[]\t[]\n"
    message = _bad(mind_dir, "train", "news.tsv", content=content)
    assert message == f"{mind_dir / 'train' / 'news.tsv'}:2: not valid UTF-8 (byte 0xe9 at column 22)"


def test_empty_file(mind_dir: Path):
    assert _bad(mind_dir, "dev", "behaviors.tsv", content=b"") == f"{mind_dir / 'dev' / 'behaviors.tsv'}: file is empty"


def test_missing_file(mind_dir: Path):
    (mind_dir / "train" / "behaviors.tsv").unlink()
    with pytest.raises(MindFormatError, match=r"train/behaviors.tsv: file not found$"):
        read_mind(mind_dir)


def test_missing_directory(tmp_path: Path):
    with pytest.raises(MindFormatError, match="MIND directory not found"):
        read_mind(tmp_path / "nowhere")


def test_duplicate_ids(mind_dir: Path):
    assert _bad(mind_dir, "train", "news.tsv", NEWS + [NEWS[1]]).endswith(":5: duplicate NewsID N2 (first at line 2)")
    write_tsv(mind_dir / "train" / "news.tsv", NEWS)
    rows = TRAIN + [TRAIN[0]]
    assert _bad(mind_dir, "train", "behaviors.tsv", rows).endswith(":3: duplicate ImpressionID 1 (first at line 1)")


def test_mixed_labelled_and_unlabelled_test_file(mind_dir: Path):
    write_tsv(mind_dir / "test" / "news.tsv", NEWS)
    write_tsv(mind_dir / "test" / "behaviors.tsv", [["7", "U9", "11/16/2019 1:00:00 AM", "N1", "N2 N3"],
                                                    ["8", "U9", "11/16/2019 1:00:00 AM", "N1", "N2-1 N3-0"]])
    with pytest.raises(MindFormatError) as caught:
        read_mind(mind_dir)
    assert str(caught.value).endswith(":2: impression 8: candidate 'N2-1' carries a label, but this file's "
                                      "impressions are unlabelled")


def test_skip_mode_counts_and_reports_every_bad_row(mind_dir: Path):
    news = NEWS + [["N5", "sports", "golf", "Bad entity", "", "u", "[oops", "[]"]]
    write_tsv(mind_dir / "train" / "news.tsv", news)
    rows = TRAIN + [["3", "U3", "yesterday", "", "N1-1"],
                    ["4", "U3", "11/11/2019 1:00:00 AM", "N5", "N1-1 N2-0"],  # N5 was skipped: unknown
                    ["5", "U4", "11/11/2019 1:00:00 AM", "", "N1-1 N2-0"]]
    write_tsv(mind_dir / "train" / "behaviors.tsv", rows)
    dataset = read_mind(mind_dir, on_error="skip")
    assert dataset.report.skipped == {"bad news rows": 1, "bad train impressions": 2}
    assert dataset.report.total_skipped == 3
    assert dataset.splits["train"].impression_ids.tolist() == [1, 2, 5]
    summary = dataset.report.summary()
    assert summary.startswith("skipped 3 bad rows (1 bad news rows, 2 bad train impressions); first: ")
    assert "news.tsv:5: news N5: bad TitleEntities JSON" in summary
    assert len(dataset.news) == 4


def test_crlf_line_endings_and_blank_lines(mind_dir: Path):
    content = "".join("\t".join(r) + "\r\n" for r in TRAIN) + "\n"
    (mind_dir / "train" / "behaviors.tsv").write_bytes(content.encode())
    train = read_mind(mind_dir).splits["train"]
    assert train.num_impressions == 2 and train.labels.tolist() == [0, 1, 1, 0, 0]


def test_impression_of_candidate_matches_offsets(mind_dir: Path):
    train = read_mind(mind_dir).splits["train"]
    assert train.impression_of_candidate().tolist() == [0, 0, 1, 1, 1]
    assert np.array_equal(train.candidate_offsets, [0, 2, 5])


# ------------------------------------------------------------------ issue #12: every bad input

def test_a_leading_byte_order_mark_is_dropped(mind_dir: Path):
    path = mind_dir / "train" / "news.tsv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert read_mind(mind_dir).news.ids == ["N1", "N2", "N3", "N4"]


@pytest.mark.parametrize("news_id, problem", [
    ("N/1", "'/' at position 2 (pyvespa puts the id in a URL path)"),
    ("N\u200b1", "U+200B ZERO WIDTH SPACE at position 2"),
    ("\ufeffN1", "U+FEFF ZERO WIDTH NO-BREAK SPACE at position 1"),
    ("N\x7f1", "U+007F DELETE at position 2"),
    ("N" * 65, "65 characters, more than 64"),
])
def test_news_ids_are_what_vespa_document_ids_and_queries_accept(mind_dir: Path, news_id: str, problem: str):
    rows = [row[:] for row in NEWS]
    rows[1][0] = news_id  # line 2: a BOM opening line 1 is the file's and is dropped
    message = _bad(mind_dir, "train", "news.tsv", rows)
    assert message.startswith(f"{mind_dir / 'train' / 'news.tsv'}:2: bad NewsID ")
    assert f": {problem}; an id is 1-64 ASCII letters, digits, '_' or '-'" in message


def test_the_id_rule_is_the_one_queries_enforce():
    from newsrec.feed.queries import _SAFE_VALUE
    from newsrec.pipeline.mind_checks import ID_PATTERN

    assert ID_PATTERN.pattern == _SAFE_VALUE.pattern


@pytest.mark.parametrize("text, accepted", [(str(2 ** 63 - 1), True), (str(2 ** 63), False), ("²", False),
                                            ("٣", False), ("0", True)])
def test_impression_ids_are_ascii_digits_within_int64(mind_dir: Path, text: str, accepted: bool):
    write_tsv(mind_dir / "train" / "behaviors.tsv", [[text] + TRAIN[0][1:], TRAIN[1]])
    if accepted:
        assert read_mind(mind_dir).splits["train"].impression_ids[0] == int(text)
    else:
        with pytest.raises(MindFormatError, match=r"behaviors.tsv:1: ImpressionID "):
            read_mind(mind_dir)


def test_news_must_agree_across_news_files(mind_dir: Path):
    rows = [row[:] for row in NEWS]
    rows[2][4] = "Another abstract."
    message = _bad(mind_dir, "dev", "news.tsv", rows)
    assert message == (f"{mind_dir / 'dev' / 'news.tsv'}:3: news N3 differs from its row at "
                       f"{mind_dir / 'train' / 'news.tsv'}:3 (a news id must be the same news item in every news.tsv: "
                       "same category, subcategory, title, abstract and URL)")
    dataset = read_mind(mind_dir, on_error="skip")
    assert dataset.news.abstract[2] == "The vote was close." and dataset.report.skipped == {"bad news rows": 1}


def test_the_same_news_may_carry_other_entity_tagging_in_another_split(mind_dir: Path):
    rows = [row[:] for row in NEWS]
    rows[0][6] = "[]"  # N1's title entities, tagged in train, not in dev
    write_tsv(mind_dir / "dev" / "news.tsv", rows)
    dataset = read_mind(mind_dir)
    assert len(dataset.news) == 4 and dataset.news.title_entities[0][0]["WikidataId"] == "Q90000001"  # first kept


def test_text_with_control_characters_or_over_its_cap_is_an_error_or_a_counted_repair(mind_dir: Path):
    rows = [row[:] for row in NEWS]
    rows[0][3] = "Riverton\x1b[31m Hawks\x07 win"
    rows[1][4] = "a" * 70_000
    for split in ("train", "dev"):
        write_tsv(mind_dir / split / "news.tsv", rows)
    with pytest.raises(MindFormatError, match=r"news.tsv:1: news N1: Title holds the control character U\+001B ESCAPE"):
        read_mind(mind_dir)
    dataset = read_mind(mind_dir, on_error="skip")
    assert dataset.news.title[0] == "Riverton[31m Hawks win" and len(dataset.news.abstract[1]) == 65_536
    assert dataset.report.repaired == {"Title control characters removed": 2, "Abstract cut to 65,536 characters": 2}
    assert dataset.report.total_skipped == 0 and "repaired 4 text fields (" in dataset.report.summary()


def test_entity_json_depth_is_bounded_without_recursion():
    from newsrec.pipeline.mind_checks import json_too_deep

    assert not json_too_deep('[{"WikidataId": "Q1", "SurfaceForms": ["[[[[[[[[[[[[[[[["]}]')
    assert not json_too_deep("[" * 10 + "]" * 10) and json_too_deep("[" * 11 + "]" * 11)
    assert json_too_deep('{"a": ' * 500 + "1" + "}" * 500)


def test_max_bad_rows_parses_counts_and_percentages():
    from newsrec.pipeline.errors import OptionValueError
    from newsrec.pipeline.mind_checks import BadRowLimit

    assert BadRowLimit().allowed(100) == 10 and BadRowLimit().allowed(5_000) == 50
    assert BadRowLimit.parse("3").allowed(10 ** 6) == 3 and BadRowLimit.parse("0.29%").allowed(10_000) == 29
    assert str(BadRowLimit()) == "10 rows or 1% of the file's rows, whichever is more"
    for text in ("lots", "-1", "101%", "1e3", "nan%", ""):
        with pytest.raises(OptionValueError, match="--max-bad-rows"):
            BadRowLimit.parse(text)


def test_more_bad_rows_than_allowed_fail_the_read(mind_dir: Path):
    from newsrec.pipeline.errors import TooManyBadRowsError

    write_tsv(mind_dir / "train" / "behaviors.tsv", TRAIN + [["3", "U3", "soon", "", "N1-1 N2-0"]])
    with pytest.raises(TooManyBadRowsError) as caught:
        read_mind(mind_dir, on_error="skip", max_bad_rows="0")
    assert str(caught.value).startswith(f"{mind_dir / 'train' / 'behaviors.tsv'}: 1 of 3 rows are bad, more than "
                                        "--max-bad-rows allows (0 rows); first: ")
    assert read_mind(mind_dir, on_error="skip", max_bad_rows="34%").splits["train"].num_impressions == 2


def test_a_split_left_empty_is_an_error(mind_dir: Path):
    from newsrec.pipeline.errors import EmptySplitError

    write_tsv(mind_dir / "dev" / "behaviors.tsv", [DEV[0][:2] + ["soon"] + DEV[0][3:]])
    with pytest.raises(EmptySplitError, match=r"dev/behaviors.tsv: split 'dev' has no impression left \(1 rows read, "
                                              r"1 skipped as bad rows\)"):
        read_mind(mind_dir, on_error="skip")
    (mind_dir / "dev" / "behaviors.tsv").write_bytes(b"\r\n \n")
    with pytest.raises(EmptySplitError, match=r"dev/behaviors.tsv: holds no impression \(only blank lines\)$"):
        read_mind(mind_dir)


def test_drop_unknown_ids_keeps_labels_with_their_candidates(mind_dir: Path):
    write_tsv(mind_dir / "train" / "behaviors.tsv", [
        ["1", "U1", "11/9/2019 9:05:58 AM", "N9 N1 N3", "N2-0 N8-0 N4-1"],
        ["2", "U2", "11/10/2019 3:12:01 PM", "", "N1-1 N2-0 N3-0"],
        ["3", "U3", "11/10/2019 3:12:01 PM", "N1", "N7-1 N2-0"],  # left without a click: dropped
        ["4", "U4", "11/10/2019 3:12:01 PM", "N1", "N2-1 N6-0"],  # left without a non-click: dropped
        ["5", "U5", "11/10/2019 3:12:01 PM", "N1", "N2-1 N4-1"],  # all clicks from the start: kept
    ])
    dataset = read_mind(mind_dir, drop_unknown_ids=True)
    train = dataset.splits["train"]
    assert train.impression_ids.tolist() == [1, 2, 5]
    assert train.history_of(0).tolist() == [0, 2]
    assert train.candidates_of(0).tolist() == [1, 3] and train.labels_of(0).tolist() == [0, 1]
    assert dataset.report.dropped == {"unknown history ids": 1, "unknown candidate ids": 3,
                                      "impressions left without a click": 1,
                                      "impressions left without a non-click": 1}
    assert [dataset.users[u] for u in train.user_index] == ["U1", "U2", "U5"]  # U3 and U4 never appear
    assert dataset.report.total_skipped == 0 and "(--drop-unknown-ids)" in dataset.report.summary()


def test_only_spaces_separate_ids(mind_dir: Path):
    rows = [row[:] for row in TRAIN]
    rows[0][3] = "N1\u00a0N3"  # str.split() used to split on the no-break space
    assert "History news id 'N1\\xa0N3' is not in any news.tsv" in _bad(mind_dir, "train", "behaviors.tsv", rows)
    rows[0][3] = "N1  N3 "  # several spaces are fine
    write_tsv(mind_dir / "train" / "behaviors.tsv", rows)
    assert read_mind(mind_dir).splits["train"].history_of(0).tolist() == [0, 2]


def test_a_file_that_cannot_be_opened_is_named(mind_dir: Path, monkeypatch):
    refused = mind_dir / "train" / "news.tsv"
    original = Path.open

    def open_or_refuse(self, *args, **kwargs):
        if self == refused:
            raise PermissionError(13, "Permission denied")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", open_or_refuse)
    with pytest.raises(MindFormatError, match=r"train/news.tsv: cannot be read \(Permission denied\)$"):
        read_mind(mind_dir)
