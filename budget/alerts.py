"""Alerts: a webhook that Slack-compatible endpoints accept, and the CI job summary.

The body is Slack's incoming-webhook shape (`text`, the fallback every compatible endpoint shows, plus
`blocks`): Mattermost, Rocket.Chat, Discord's `/slack` endpoints and Microsoft Teams workflows accept it too.
The URL is a secret (it lets anyone post): it comes from `--webhook` or `VASTGUARD_WEBHOOK_URL`, never from a
team file, and is never printed.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

WEBHOOK_ENV = "VASTGUARD_WEBHOOK_URL"


class Alert(BaseModel):
    model_config = ConfigDict(frozen=True)

    team: str
    kind: str  # warning, budget, paused, idle, resumed
    title: str
    text: str

    def slack(self) -> dict[str, object]:
        return {
            "text": f"{self.title}: {self.text}",
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": self.title[:150]}},
                {"type": "section", "text": {"type": "mrkdwn", "text": self.text}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": f"vastguard guard · team `{self.team}`"}]},
            ],
        }

    def markdown(self) -> str:
        return f"- **{self.title}**: {self.text}"


Post = Callable[[str, bytes], int]


def _post(url: str, body: bytes) -> int:
    if not url.startswith(("https://", "http://")):
        raise ValueError("the webhook URL must be http(s)")
    request = urllib.request.Request(url, data=body, method="POST",  # noqa: S310 (scheme checked above)
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


@dataclass
class Alerter:
    """Sends each alert to the webhook (if any) and the job summary (if any); `sent` keeps what went out."""

    webhook: str | None = None
    summary: str | None = None
    post: Post = _post
    sent: list[Alert] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @classmethod
    def from_env(cls, webhook: str | None = None) -> Alerter:
        return cls(webhook=webhook or os.environ.get(WEBHOOK_ENV) or None,
                   summary=os.environ.get("GITHUB_STEP_SUMMARY") or None)

    def send(self, alert: Alert) -> bool:
        """True when the alert reached the webhook (or there is none to reach)."""
        delivered = True
        if self.webhook:
            try:
                status = self.post(self.webhook, json.dumps(alert.slack()).encode())
                delivered = 200 <= status < 300
                if not delivered:
                    self.problems.append(f"the webhook answered HTTP {status} to the {alert.kind} alert of "
                                         f"{alert.team}; it is sent again on the next pass")
            except (OSError, ValueError) as err:
                delivered = False
                self.problems.append(f"the webhook could not be reached for the {alert.kind} alert of {alert.team} "
                                     f"({type(err).__name__}); it is sent again on the next pass")
        if self.summary:
            with open(self.summary, "a", encoding="utf-8") as fh:
                fh.write(alert.markdown() + "\n")
        if delivered:
            self.sent.append(alert)
        return delivered
