"""Sending mail. ``Mailer.send`` is the whole interface; SMTP for real use, console for development
(each message logged without its body and written as an .eml file to ``mail_dir``)."""

from __future__ import annotations

import logging
import smtplib
import ssl
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..settings import MailSettings

log = logging.getLogger("idbroker.mail")


class MailError(Exception):
    pass


class Mailer(Protocol):
    def send(self, to: str, subject: str, text: str, html: str | None = None) -> None: ...


def build_message(sender: str, to: str, subject: str, text: str, html: str | None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1].strip("> ") or "localhost")
    msg.set_content(text)
    if html:
        msg.add_alternative(html, subtype="html")
    return msg


class SmtpMailer:
    def __init__(self, mail: MailSettings):
        self.s = mail

    def send(self, to: str, subject: str, text: str, html: str | None = None) -> None:
        s = self.s
        msg = build_message(s.mail_from, to, subject, text, html)
        context = ssl.create_default_context()
        try:
            if s.smtp_security == "ssl":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout,
                                                      context=context)
            else:
                smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout)
            with smtp:
                if s.smtp_security == "starttls":
                    smtp.starttls(context=context)
                if s.smtp_username:
                    smtp.login(s.smtp_username, s.smtp_password)
                smtp.send_message(msg)
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("mail to %s not sent: %s", _mask(to), type(exc).__name__)
            raise MailError("the message could not be sent") from exc


class ConsoleMailer:
    """Development: writes every message to mail_dir and logs that it did."""

    def __init__(self, mail: MailSettings, data_dir: str):
        self.sender = mail.mail_from
        self.folder = Path(mail.mail_dir or Path(data_dir) / "mail")

    def send(self, to: str, subject: str, text: str, html: str | None = None) -> None:
        msg = build_message(self.sender, to, subject, text, html)
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{time.time_ns()}-{to.replace('/', '_')}.eml"
        path.write_bytes(bytes(msg))
        log.info("mail to %s (%s) written to %s", _mask(to), subject, path)


def make_mailer(mail: MailSettings, data_dir: str) -> Mailer:
    return SmtpMailer(mail) if mail.mail_backend == "smtp" else ConsoleMailer(mail, data_dir)


def _mask(address: str) -> str:
    """Logs name the domain only."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"
