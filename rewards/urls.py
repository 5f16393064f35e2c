from django.urls import path

from rewards import views

rewards_patterns = (
    [
        path("", views.reward_list, name="list"),
        path("new/", views.reward_gallery, name="gallery"),
        path("new/<slug:slug>/", views.reward_new, name="new"),
        path("<int:reward_id>/", views.reward_detail, name="detail"),
        path("<int:reward_id>/delete/", views.reward_delete, name="delete"),
        path("<int:reward_id>/test/rows/", views.test_rows, name="test-rows"),
        path("<int:reward_id>/test/", views.test_start, name="test-start"),
        path("tests/<int:test_id>/", views.test_result, name="test-result"),
    ],
    "rewards",
)
