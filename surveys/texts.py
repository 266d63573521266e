"""Every word a respondent reads, in their language.

`survey_texts(survey, locale, organization)` picks the language from the contact's locale
("de-AT" → "de", unknown → English) and returns one dict: the survey's question, the
follow-up prompt and thank-you per score group, the email subject and intro, and the fixed
interface strings (buttons, labels, footer), with {org} and {first_name} filled in.

A survey field comes from, in order: the survey's own `translations[lang][field]`; the
survey's field itself when the language is English or the admin changed it from the stock
default (their words win over our stock translation); the stock translation shipped here.
"""

import re

from surveys.models import Survey

DEFAULT_LANGUAGE = "en"

SURVEY_FIELDS = (
    "question",
    "prompt_detractor",
    "prompt_passive",
    "prompt_promoter",
    "thanks_detractor",
    "thanks_passive",
    "thanks_promoter",
    "email_subject",
    "email_intro",
)
GROUPS = ("detractor", "passive", "promoter")

# The stock survey texts in the languages shipped besides English (English is the model's
# field defaults, surveys/models.py).
STOCK_TEXTS: dict[str, dict[str, str]] = {
    "de": {
        "question": (
            "Wie wahrscheinlich ist es, dass Sie {org} einem Freund oder Kollegen empfehlen?"
        ),
        "prompt_detractor": "Das tut uns leid. Was sollten wir besser machen?",
        "prompt_passive": "Danke! Was müssten wir tun, damit Sie uns eine 10 geben?",
        "prompt_promoter": "Wunderbar! Was gefällt Ihnen an uns am meisten?",
        "thanks_detractor": (
            "Danke für Ihre Offenheit. Jemand aus unserem Team wird sich bei Ihnen melden."
        ),
        "thanks_passive": "Vielen Dank! Ihr Feedback hilft uns, besser zu werden.",
        "thanks_promoter": "Vielen Dank! Wir freuen uns sehr, dass Sie uns empfehlen würden.",
        "email_subject": "Eine kurze Frage von {org}",
        "email_intro": (
            "Hallo {first_name}, wir möchten gern wissen, wie zufrieden Sie mit uns sind. "
            "Es dauert nur einen Klick."
        ),
    },
    "fr": {
        "question": (
            "Quelle est la probabilité que vous recommandiez {org} à un ami ou un collègue ?"
        ),
        "prompt_detractor": "Nous sommes désolés. Que devrions-nous améliorer ?",
        "prompt_passive": "Merci ! Que faudrait-il pour que vous nous donniez un 10 ?",
        "prompt_promoter": "Formidable ! Qu'appréciez-vous le plus chez nous ?",
        "thanks_detractor": (
            "Merci pour votre franchise. Une personne de notre équipe va vous contacter."
        ),
        "thanks_passive": "Merci ! Vos commentaires nous aident à nous améliorer.",
        "thanks_promoter": "Merci ! Nous sommes ravis que vous nous recommandiez.",
        "email_subject": "Une petite question de la part de {org}",
        "email_intro": (
            "Bonjour {first_name}, nous aimerions savoir ce que vous pensez de nous. "
            "Un seul clic suffit."
        ),
    },
}

# The fixed interface strings.
UI: dict[str, dict[str, str]] = {
    "en": {
        "scale_low": "Not at all likely",
        "scale_high": "Extremely likely",
        "scale_hint": "0 means not at all likely, 10 means extremely likely.",
        "email_cta": "Click a number to answer. One click is all it takes.",
        "your_score": "Your score",
        "saved_note": "Saved. A comment is optional, but it helps a lot.",
        "change_score": "Change your score",
        "comment_label": "Your comment (optional)",
        "send": "Send",
        "send_comment": "Send feedback",
        "email_label": "Your email address (optional)",
        "email_help": "Leave it if you would like a reply.",
        "thanks_heading": "Thank you!",
        "edit_answer": "Change your answer",
        "footer_reason": "You receive this email because you are a customer of {org}.",
        "unsubscribe_link": "Unsubscribe from these surveys",
        "unsubscribe_title": "Unsubscribe from surveys by {org}?",
        "unsubscribe_body": "You will no longer receive survey emails from {org}.",
        "unsubscribe_button": "Unsubscribe",
        "unsubscribed_title": "You are unsubscribed",
        "unsubscribed_body": "You will not receive survey emails from {org} anymore.",
        "reminder_prefix": "Reminder: ",
        "survey_by": "A survey by {org}",
        "error_title": "This link does not work",
        "error_invalid": "This survey link is not valid. Please use the link from your email.",
        "error_expired": "This survey link has expired.",
        "error_gone": "This survey is no longer available.",
        "error_bad_score": "The score must be a whole number from 0 to 10.",
        "error_rate_limited": "Too many answers from your network. Please try again later.",
        "error_bad_email": "Enter a valid email address, or leave the field empty.",
        "error_not_saved": "Your answer could not be saved.",
    },
    "de": {
        "scale_low": "Überhaupt nicht wahrscheinlich",
        "scale_high": "Äußerst wahrscheinlich",
        "scale_hint": "0 heißt überhaupt nicht wahrscheinlich, 10 äußerst wahrscheinlich.",
        "email_cta": "Klicken Sie auf eine Zahl. Ein Klick genügt.",
        "your_score": "Ihre Bewertung",
        "saved_note": "Gespeichert. Ein Kommentar ist freiwillig, hilft uns aber sehr.",
        "change_score": "Bewertung ändern",
        "comment_label": "Ihr Kommentar (freiwillig)",
        "send": "Senden",
        "send_comment": "Feedback senden",
        "email_label": "Ihre E-Mail-Adresse (freiwillig)",
        "email_help": "Geben Sie sie an, wenn Sie eine Antwort möchten.",
        "thanks_heading": "Vielen Dank!",
        "edit_answer": "Antwort ändern",
        "footer_reason": "Sie erhalten diese E-Mail, weil Sie Kunde von {org} sind.",
        "unsubscribe_link": "Von diesen Umfragen abmelden",
        "unsubscribe_title": "Von Umfragen von {org} abmelden?",
        "unsubscribe_body": "Sie erhalten dann keine Umfrage-E-Mails von {org} mehr.",
        "unsubscribe_button": "Abmelden",
        "unsubscribed_title": "Sie sind abgemeldet",
        "unsubscribed_body": "Sie erhalten keine Umfrage-E-Mails von {org} mehr.",
        "reminder_prefix": "Erinnerung: ",
        "survey_by": "Eine Umfrage von {org}",
        "error_title": "Dieser Link funktioniert nicht",
        "error_invalid": (
            "Dieser Umfrage-Link ist ungültig. Bitte verwenden Sie den Link aus Ihrer E-Mail."
        ),
        "error_expired": "Dieser Umfrage-Link ist abgelaufen.",
        "error_gone": "Diese Umfrage ist nicht mehr verfügbar.",
        "error_bad_score": "Die Bewertung muss eine ganze Zahl von 0 bis 10 sein.",
        "error_rate_limited": (
            "Zu viele Antworten aus Ihrem Netzwerk. Bitte versuchen Sie es später erneut."
        ),
        "error_bad_email": (
            "Geben Sie eine gültige E-Mail-Adresse ein oder lassen Sie das Feld leer."
        ),
        "error_not_saved": "Ihre Antwort konnte nicht gespeichert werden.",
    },
    "fr": {
        "scale_low": "Pas du tout probable",
        "scale_high": "Extrêmement probable",
        "scale_hint": "0 signifie pas du tout probable, 10 extrêmement probable.",
        "email_cta": "Cliquez sur un chiffre pour répondre. Un seul clic suffit.",
        "your_score": "Votre note",
        "saved_note": "Enregistrée. Un commentaire est facultatif, mais très utile.",
        "change_score": "Modifier votre note",
        "comment_label": "Votre commentaire (facultatif)",
        "send": "Envoyer",
        "send_comment": "Envoyer",
        "email_label": "Votre adresse e-mail (facultatif)",
        "email_help": "Indiquez-la si vous souhaitez une réponse.",
        "thanks_heading": "Merci !",
        "edit_answer": "Modifier votre réponse",
        "footer_reason": "Vous recevez cet e-mail parce que vous êtes client de {org}.",
        "unsubscribe_link": "Se désabonner de ces enquêtes",
        "unsubscribe_title": "Se désabonner des enquêtes de {org} ?",
        "unsubscribe_body": "Vous ne recevrez plus d'enquêtes par e-mail de {org}.",
        "unsubscribe_button": "Se désabonner",
        "unsubscribed_title": "Vous êtes désabonné",
        "unsubscribed_body": "Vous ne recevrez plus d'enquêtes par e-mail de {org}.",
        "reminder_prefix": "Rappel : ",
        "survey_by": "Une enquête de {org}",
        "error_title": "Ce lien ne fonctionne pas",
        "error_invalid": (
            "Ce lien d'enquête n'est pas valide. Utilisez le lien reçu dans votre e-mail."
        ),
        "error_expired": "Ce lien d'enquête a expiré.",
        "error_gone": "Cette enquête n'est plus disponible.",
        "error_bad_score": "La note doit être un nombre entier de 0 à 10.",
        "error_rate_limited": "Trop de réponses depuis votre réseau. Réessayez plus tard.",
        "error_bad_email": "Saisissez une adresse e-mail valide ou laissez le champ vide.",
        "error_not_saved": "Votre réponse n'a pas pu être enregistrée.",
    },
}

LANGUAGES = tuple(UI)
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_NAMELESS = re.compile(r"\s*\{first_name\}")


def fill(text: str, values: dict[str, str]) -> str:
    """Fills {name} placeholders that `values` knows; leaves any other brace as it is.

    Not str.format: an admin's text may hold a stray brace, "{0}" or "{org.__class__}",
    which must neither crash the send nor reach into objects."""
    if not values.get("first_name"):
        text = _NAMELESS.sub("", text)  # "Hi {first_name}, …" → "Hi, …"
    return _PLACEHOLDER.sub(lambda m: str(values.get(m.group(1), m.group(0))), text)


def _normalize(tag: str | None) -> str:
    return (tag or "").strip().lower().replace("_", "-")


def pick_language(locale: str | None, available=LANGUAGES) -> str:
    """The best of `available` for a locale: the exact tag, its base language, or English."""
    tag = _normalize(locale)
    if tag in available:
        return tag
    base = tag.split("-", 1)[0]
    return base if base in available else DEFAULT_LANGUAGE


def ui_strings(language: str) -> dict[str, str]:
    """The fixed interface strings of a language (English where one is missing)."""
    base = _normalize(language).split("-", 1)[0]
    return {**UI[DEFAULT_LANGUAGE], **UI.get(base, {})}


def _stock_default(name: str) -> str:
    return Survey._meta.get_field(name).default


def first_name_of(name: str | None) -> str:
    return (name or "").strip().split(" ", 1)[0] if name else ""


def survey_texts(survey: Survey, locale: str | None, organization, *, first_name: str = "") -> dict:
    """Everything a respondent reads for this survey, in the contact's language."""
    translations = {
        _normalize(lang): fields
        for lang, fields in (survey.translations or {}).items()
        if isinstance(fields, dict)
    }
    language = pick_language(locale, {*LANGUAGES, *translations})
    base = language.split("-", 1)[0]
    values = {"org": organization.name if organization else "", "first_name": first_name}

    texts: dict = {"lang": language, "org": values["org"]}
    for name, text in ui_strings(language).items():
        texts[name] = fill(text, values)
    for name in SURVEY_FIELDS:
        own = getattr(survey, name) or _stock_default(name)
        text = None
        for lang in (language, base):
            candidate = translations.get(lang, {}).get(name)
            if isinstance(candidate, str) and candidate.strip():
                text = candidate
                break
        if text is None:
            if base == DEFAULT_LANGUAGE or own != _stock_default(name):
                text = own
            else:
                text = STOCK_TEXTS.get(base, {}).get(name, own)
        texts[name] = fill(text, values)
    texts["prompts"] = {group: texts[f"prompt_{group}"] for group in GROUPS}
    texts["thanks"] = {group: texts[f"thanks_{group}"] for group in GROUPS}
    return texts
