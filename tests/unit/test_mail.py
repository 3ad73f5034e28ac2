"""Mail goes through a real SMTP server; the console sender writes .eml files."""

from support import make_settings

from idbroker.notify.mail import ConsoleMailer, SmtpMailer


def test_smtp_mailer_delivers(smtp, tmp_path):
    mailer = SmtpMailer(make_settings(tmp_path, **smtp.settings()).mail)
    mailer.send("Someone@Example.com", "Hello", "plain body", "<p>html body</p>")
    [msg] = smtp.wait_for("someone@example.com")
    assert msg["Subject"] == "Hello" and msg["From"] == "Broker <no-reply@idbroker.test>"
    assert smtp.text(msg).strip() == "plain body"


def test_console_mailer_writes_eml(tmp_path):
    settings = make_settings(tmp_path)
    ConsoleMailer(settings.mail, settings.data_dir).send("a@example.com", "Subject", "body")
    files = list((tmp_path / "mail").glob("*.eml"))
    assert len(files) == 1 and b"Subject: Subject" in files[0].read_bytes()
