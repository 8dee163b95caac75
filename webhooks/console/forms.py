"""The console's forms (WTForms through Flask-WTF): their fields and what each accepts.

CSRF is checked once for every console POST, forms or not, by the blueprint's guard
(``CSRFProtect.protect``), so these forms do not check it again.
"""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, PasswordField, SelectField, StringField
from wtforms.validators import InputRequired, Length, NumberRange, Optional, ValidationError

CONTENTS = ("id-only", "empty", "full-resource")


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


class _ConsoleForm(FlaskForm):
    class Meta:
        csrf = False  # checked by the blueprint's guard before any view


class LoginForm(_ConsoleForm):
    """User name (at most 120 characters) and password, both required."""

    username = StringField(validators=[InputRequired(), Length(max=120)])
    password = PasswordField(validators=[InputRequired()])


def _ascii_digits(_form: Any, field: Any) -> None:
    raw = _strip((field.raw_data or [""])[0])
    if raw and not (raw.isascii() and raw.isdigit()):
        raise ValidationError("a whole number of seconds (digits 0-9)")


class RegisterSubscriptionForm(_ConsoleForm):
    """A new Subscription on the EHR: its kind, topic, content, heartbeat and options."""

    kind = SelectField(choices=["rest-hook", "topic"], default="rest-hook")
    topic = StringField(filters=[_strip], validators=[Optional()])
    content = SelectField(choices=list(CONTENTS), default="id-only")
    heartbeat = IntegerField(
        validators=[Optional(), _ascii_digits, NumberRange(min=0, max=999_999_999)]
    )
    hmac = BooleanField()
    payload = BooleanField()

    def first_error(self) -> str:
        """``field: message`` of the first field that refused its value."""
        name, messages = next(iter(self.errors.items()))
        return f"{name}: {messages[0]}"
