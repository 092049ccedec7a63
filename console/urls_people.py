"""People, groups, budgets and the audit log."""

from __future__ import annotations

from django.urls import path

from console import views_audit, views_budgets, views_groups, views_people

urlpatterns = [
    path("people/", views_people.people_list, name="people"),
    path("people/new/", views_people.person_create, name="person_create"),
    path("people/<int:pk>/manage/", views_people.person_manage, name="person_manage"),
    path("people/<int:pk>/active/", views_people.person_active, name="person_active"),
    path("people/<int:pk>/staff/", views_people.person_staff, name="person_staff"),
    path("people/<int:pk>/groups/", views_people.person_groups, name="person_groups"),
    path("people/<int:pk>/limits/", views_people.person_limits, name="person_limits"),
    path("people/<int:pk>/link/", views_people.person_link, name="person_link"),
    path("set-password/<uidb64>/<token>/", views_people.SetPasswordView.as_view(), name="set_password"),
    path("groups/", views_groups.group_list, name="groups"),
    path("groups/new/", views_groups.group_create, name="group_create"),
    path("groups/<int:pk>/", views_groups.group_page, name="group"),
    path("groups/<int:pk>/members/", views_groups.group_members_add, name="group_members_add"),
    path("groups/<int:pk>/members/<int:user_pk>/remove/", views_groups.group_member_remove, name="group_member_remove"),
    path("groups/<int:pk>/access/rules/", views_groups.group_access_rules, name="group_access_rules"),
    path("groups/<int:pk>/access/add/", views_groups.group_access_add, name="group_access_add"),
    path("groups/<int:pk>/access/remove/", views_groups.group_access_remove, name="group_access_remove"),
    path("groups/<int:pk>/limits/", views_groups.group_limits, name="group_limits"),
    path("groups/<int:pk>/budget/", views_groups.group_budget, name="group_budget"),
    path("budgets/", views_budgets.budgets, name="budgets"),
    path("budgets/new/", views_budgets.budget_create, name="budget_create"),
    path("budgets/<int:pk>/", views_budgets.budget_edit, name="budget_edit"),
    path("audit/", views_audit.audit_log, name="audit"),
]
