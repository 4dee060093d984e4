"""A QA bot for invoice labels, written against Kili's plugin API: the same
base class, handler names, label shape and `self.kili` calls as Kili's
programmatic-QA tutorial, so only the two imports differ from a Kili plugin
(`kili.plugins` → `pluginhub.plugins`, `kili.types` → `pluginhub.types`).

Rules: an IBAN must start with FR; the currency must be EUR or USD. Each object
that breaks a rule gets an issue pointing at it and the asset goes back to the
labeling queue. Every checked label records its accuracy (the share of objects
that pass) in the asset's metadata. A label that passes stays where submitting
put it: in review.
"""

from pluginhub.plugins import PluginCore
from pluginhub.types import Label

IBAN_PREFIX = "FR"
CURRENCIES = ("EUR", "USD")


def find_problems(label: Label) -> list[tuple[str, str]]:
    """(object mid, issue text) for each annotation that breaks a rule."""
    problems = []
    for annotation in label["jsonResponse"]["JOB_0"]["annotations"]:
        category = annotation["categories"][0]["name"]
        if category == "IBAN":
            iban = annotation["children"]["TRANSCRIPTION_JOB"]["text"]
            if not iban.startswith(IBAN_PREFIX):
                problems.append((annotation["mid"], "IBAN number should start by FR"))
        elif category == "CURRENCY":
            currency = annotation["children"]["TRANSCRIPTION_JOB_2"]["text"]
            if currency not in CURRENCIES:
                problems.append(
                    (annotation["mid"], "Authorized currencies are only EUR and USD")
                )
    return problems


class PluginHandler(PluginCore):
    """Checks each submitted label against the invoice rules."""

    def on_submit(self, label: Label, asset_id: str) -> None:
        annotations = label["jsonResponse"]["JOB_0"]["annotations"]
        problems = find_problems(label)
        self.logger.info(
            f"Label {label['id']}: {len(annotations)} object(s), "
            f"{len(problems)} problem(s)"
        )
        for mid, text in problems:
            self.kili.append_to_issues(
                label_id=label["id"],
                project_id=self.project_id,
                object_mid=mid,
                text=text,
            )
        if problems:
            self.kili.send_back_to_queue(asset_ids=[asset_id])
            self.logger.warning("Sent back to the labeling queue")
        accuracy = 100.0
        if annotations:
            accuracy = 100 * (1 - len(problems) / len(annotations))
        self.kili.update_properties_in_assets(
            asset_ids=[asset_id], json_metadatas=[{"accuracy": accuracy}]
        )

    def on_review(self, label: Label, asset_id: str) -> None:
        self.logger.info("Reviewed: nothing to check")
