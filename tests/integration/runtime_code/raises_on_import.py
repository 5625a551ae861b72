raise KeyError("CONFIG_PATH")
