# Calls only go down the layers (docs/design.md section 1): includes read
# from src/, references read with nm from the static library's objects.
add_test(NAME layer_check
         COMMAND python3 ${PROJECT_SOURCE_DIR}/scripts/check_layers.py
                 ${PROJECT_SOURCE_DIR}/src $<TARGET_FILE:tidemalloc_static>)
add_test(NAME layer_check_selftest
         COMMAND python3 ${PROJECT_SOURCE_DIR}/scripts/check_layers.py --self-test)
