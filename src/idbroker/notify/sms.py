"""Sending text messages. ``SmsSender.send(to, text)`` is the whole interface; ``sms_backend``
picks one:

- ``console`` (development): logged (number masked) and written to ``data_dir/sms`` as a file.
- ``webhook``: an HTTPS POST of the JSON ``{"to": ..., "text": ...}`` to ``sms_webhook_url``, with
  ``X-Idbroker-Signature: sha256=<hex HMAC-SHA256 of the exact body under sms_webhook_secret>``
  so the receiver can tell the broker sent it. Any 2xx answer counts as sent.
- ``sns``: Amazon SNS ``Publish`` to the phone number (boto3, installed with the ``sns`` extra);
  credentials and region come from the usual AWS environment, ``sns_region`` and, for a local
  stand-in, ``sns_endpoint_url``.

Numbers are checked for E.164 (idbroker/phone.py) before anything is sent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from pathlib import Path
from typing import Any, Protocol

from ..phone import is_e164
from ..settings import Settings

log = logging.getLogger("idbroker.sms")

SIGNATURE_HEADER = "X-Idbroker-Signature"
MAX_TEXT = 480  # three concatenated GSM-7 parts; our texts are far shorter


class SmsError(Exception):
    pass


class SmsSender(Protocol):
    def send(self, to: str, text: str) -> None: ...


def mask_phone(number: str) -> str:
    """What pages and logs show: the country part and the last two digits."""
    if len(number) < 6:
        return "•" * len(number)
    return number[:3] + "•" * (len(number) - 5) + number[-2:]


def _checked(to: str, text: str) -> None:
    if not is_e164(to):
        raise SmsError("not an E.164 phone number")
    if not text or len(text) > MAX_TEXT:
        raise SmsError("the text is empty or too long")


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class ConsoleSms:
    def __init__(self, settings: Settings):
        self.folder = Path(settings.data_dir) / "sms"

    def send(self, to: str, text: str) -> None:
        _checked(to, text)
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{time.time_ns()}-{to.lstrip('+')}.txt"
        path.write_text(f"To: {to}\n\n{text}\n", encoding="utf-8")
        log.info("SMS to %s written to %s", mask_phone(to), path)


class WebhookSms:
    def __init__(self, settings: Settings, timeout: float = 10.0):
        self.url = settings.sms_webhook_url
        self.secret = settings.sms_webhook_secret
        self.timeout = timeout

    def send(self, to: str, text: str) -> None:
        _checked(to, text)
        body = json.dumps({"to": to, "text": text}, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "idbroker"}
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(self.secret, body)
        import httpx  # not with the module: with rich installed httpx loads its CLI too (~7 MB per worker)

        try:
            with httpx.Client(timeout=self.timeout, follow_redirects=False) as http:
                answer = http.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("SMS to %s not sent: %s", mask_phone(to), type(exc).__name__)
            raise SmsError("the SMS gateway could not be reached") from exc
        if not 200 <= answer.status_code < 300:
            log.warning("SMS to %s refused by the gateway: HTTP %s", mask_phone(to), answer.status_code)
            raise SmsError(f"the SMS gateway answered {answer.status_code}")


class SnsSms:
    def __init__(self, settings: Settings):
        self.region = settings.sns_region
        self.endpoint_url = settings.sns_endpoint_url or None
        self._client: Any = None

    def client(self) -> Any:
        if self._client is None:
            try:
                import boto3
            except ImportError as exc:  # pragma: no cover - the sns extra is missing
                raise SmsError("sms_backend = sns needs boto3 (pip install 'idbroker[sns]')") from exc
            self._client = boto3.client("sns", region_name=self.region, endpoint_url=self.endpoint_url)
        return self._client

    def send(self, to: str, text: str) -> None:
        _checked(to, text)
        try:
            self.client().publish(PhoneNumber=to, Message=text, MessageAttributes={
                "AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Transactional"}})
        except SmsError:
            raise
        except Exception as exc:  # botocore's ClientError, connection and credential errors
            log.warning("SMS to %s not sent through SNS: %s", mask_phone(to), type(exc).__name__)
            raise SmsError("SNS did not accept the message") from exc


def make_sms_sender(settings: Settings) -> SmsSender:
    if settings.sms_backend == "webhook":
        return WebhookSms(settings)
    if settings.sms_backend == "sns":
        return SnsSms(settings)
    return ConsoleSms(settings)
