from pathlib import Path

from indexer.rules import RULES, rules_markdown

DOC = Path(__file__).parents[2] / "docs" / "rules.md"


def test_rules_doc_is_generated_from_the_code() -> None:
    assert DOC.read_text(encoding="utf-8") == rules_markdown(), (
        "docs/rules.md is stale: run `invoice-verify rules --markdown > docs/rules.md`"
    )


def test_every_rule_has_both_languages_and_a_spec_reference() -> None:
    for rule in RULES.values():
        assert rule.message_en.strip(), rule.code
        assert rule.message_vi.strip(), rule.code
        assert rule.spec.strip(), rule.code
