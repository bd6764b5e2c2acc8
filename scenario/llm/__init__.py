"""Model calls: the only door to litellm.

``model_loop`` (the one litellm loop and the litellm module), ``call`` (request, response, the
in-process model seam), ``layers`` (replay cache, error explanation, accounting, debug log, span,
retry, rate limit), ``client`` (assembles them: ``complete`` and ``acompletion``), ``classify`` and
``retry`` (what a failure is, and trying again), ``replay_cache`` and ``custom_client``.
"""
