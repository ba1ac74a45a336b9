"""Factories for test data. Policies come with a first version, as in production."""

from __future__ import annotations

import factory
from django.contrib.auth.models import User

from labeling.models import Policy, PolicyVersion
from reviewapp.models import Queue, RoutingRule

BINARY_SCHEMA = {
    "labels": [
        {"value": "violating", "title": "Violating"},
        {"value": "not_violating", "title": "Not violating"},
    ],
    "allow_multiple": False,
    "severity_levels": ["low", "medium", "high"],
}


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")


class PolicyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Policy
        django_get_or_create = ("key",)
        skip_postgeneration_save = True

    key = factory.Sequence(lambda n: f"policy-{n}")
    name = factory.LazyAttribute(lambda p: p.key.replace("-", " ").title())
    guideline = "Remove content that targets a person with insults."
    severity_weight = 1.0
    version = factory.RelatedFactory("tests.factories.PolicyVersionFactory", factory_related_name="policy", number=1)


class PolicyVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PolicyVersion

    policy = factory.SubFactory(PolicyFactory, version=None)
    number = 1
    guideline = "Version text."
    label_schema = BINARY_SCHEMA


class QueueFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Queue
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"queue-{n}")
    name = factory.LazyAttribute(lambda q: q.slug)
    sla_minutes = 60


class RoutingRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RoutingRule

    policy = factory.SubFactory(PolicyFactory)
    model_name = RoutingRule.ANY_MODEL
    auto_clear = 0.2
    auto_action = 0.9
    audit_rate_clear = 0.0
    audit_rate_action = 0.0
    queue = factory.SubFactory(QueueFactory)


class ContentItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "reviewapp.ContentItem"

    source = "comments"
    external_id = factory.Sequence(lambda n: f"item-{n}")
    text = "you are a clown"


class ReviewTaskFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "reviewapp.ReviewTask"

    item = factory.SubFactory(ContentItemFactory)
    policy = factory.SubFactory(PolicyFactory)
    queue = factory.SubFactory(QueueFactory)
    reason = "low_confidence"
    priority = 1.0
    due_at = factory.LazyFunction(lambda: __import__("django.utils.timezone").utils.timezone.now())
