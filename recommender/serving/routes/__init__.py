"""The JSON API's routes, one module per job; ``create_app`` includes their routers in order.

    operations   GET /healthz, GET /metrics, GET /v1/info
    queries      GET /v1/articles/{id}/related, GET /v1/related?url=, POST /v1/similar
    widget       GET /widget.js, GET /v1/related.html (what a site embeds)
    stories      GET /v1/articles/{id}/story, GET /v1/stories
    events       POST /v1/events
    articles     GET, PUT and DELETE of articles

Routes hold no ranking, filtering or storage logic: they validate, make one Recommender
call and shape the answer. They take the Recommender (and the writer, the metrics) from
``app.state`` through the dependencies of :mod:`recommender.serving.state`. Queries are
plain ``def`` routes, so FastAPI runs them in its threadpool and the event loop never
waits on FAISS or the model; writes go through one dedicated thread, which keeps them
in order without tying up the threads that serve queries.
"""
