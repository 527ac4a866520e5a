"""tracelake.sdk: one-line autotrace for OpenAI and LangChain."""
